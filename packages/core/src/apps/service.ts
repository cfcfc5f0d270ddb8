import type { Actor } from "../actor.ts";
import { auditAction } from "../audit/service.ts";
import { ConditionFailedError, ConflictError, NotFoundError, ValidationError } from "../errors.ts";
import { bindRepository, type RepoBinding } from "../github/binding.ts";
import { newId } from "../ids.ts";
import { owned } from "../owned.ts";
import { releaseCounted, takeCounted } from "../plans/counts.ts";
import { planOf } from "../plans/quota.ts";
import type { Deps } from "../ports.ts";
import { projectKey } from "../projects/entity.ts";
import { serverKey } from "../servers/entity.ts";
import { cond, queryAll, type TransactOp } from "../store/store.ts";
import {
  type AppItem,
  appEnvKey,
  appKey,
  type Commands,
  isActive,
  projectAppsPk,
  type Repository,
  repoBranchPk,
  repoIdBranchPk,
  toApp,
} from "./entity.ts";
import { envItem, validateEnv } from "./env.ts";
import { autoStopScheduleName } from "./lifecycle.ts";

export interface AppInput {
  name: string;
  projectId: string;
  serverId: string;
  cdPath: string;
  appUrl?: string | null;
  autoStopTimeout?: number;
  repository?: Repository | null;
  commands?: Partial<Commands> | null;
}

export async function getAppItem(deps: Pick<Deps, "store">, ownerId: string, id: string): Promise<AppItem> {
  const item = await deps.store.get<AppItem>(appKey(ownerId, id));
  if (!item) throw new NotFoundError("App");
  return item;
}

/**
 * The index webhooks find the app by: its repository id, or (admin, global
 * secret) its name. An app reached only through its own hook is in neither.
 */
const repoIndex = (repository: Repository | null | undefined, binding: RepoBinding | undefined, id: string) =>
  !repository || binding === "app-hook"
    ? {}
    : {
        gsi3pk:
          binding === "id" && typeof repository.id === "number"
            ? repoIdBranchPk(repository.id, repository.branch)
            : repoBranchPk(repository.fullName, repository.branch),
        gsi3sk: `APP#${id}`,
      };

/** The referenced project and server must be the caller's own (checked in the same transaction). */
const mustExist = (ownerId: string, projectId: string, serverId: string, countOnServer: number): TransactOp[] => [
  { check: projectKey(ownerId, projectId), condition: cond.exists() },
  { update: { ...serverKey(ownerId, serverId), add: { appCount: countOnServer }, condition: cond.exists() } },
];

function referenceError(err: unknown, base: number): never {
  if (err instanceof ConditionFailedError) {
    const errors = err.failedIndexes.flatMap((i) =>
      i === base
        ? [{ path: "body.projectId", message: "No such project" }]
        : i === base + 1
          ? [{ path: "body.serverId", message: "No such server" }]
          : [],
    );
    if (errors.length > 0) throw new ValidationError("The app refers to something that does not exist", errors);
    throw new ConflictError("The app changed meanwhile; read it again and retry");
  }
  throw err;
}

/** What an app made from a template (templates/apply.ts) starts with, and what its audit entry names. */
export interface AppOrigin {
  templateId: string;
  /** Files that existed in cdPath and were overwritten (`force`). */
  overwritten: string[];
  /** The app's first environment variables. */
  env: Record<string, string>;
}

export async function createApp(deps: Deps, actor: Actor, input: AppInput, origin?: AppOrigin) {
  if (origin) validateEnv(origin.env);
  const now = Date.now();
  const id = newId("app");
  const bound = input.repository ? await bindRepository(deps, actor, undefined, input.repository) : undefined;
  const item: AppItem = {
    ...appKey(actor.userId, id),
    entity: "app",
    id,
    ownerId: actor.userId,
    name: input.name,
    projectId: input.projectId,
    serverId: input.serverId,
    cdPath: input.cdPath,
    appUrl: input.appUrl ?? null,
    autoStopTimeout: input.autoStopTimeout ?? 0,
    status: "stopped",
    runId: null,
    startedAt: null,
    stopsAt: null,
    lastError: null,
    repository: bound?.repository ?? null,
    ...(bound ? { repoBinding: bound.binding } : {}),
    commands: input.commands ? (input.commands as Commands) : null,
    createdAt: now,
    updatedAt: now,
    version: 1,
    ...owned.list(actor.userId, "APP", now, id),
    gsi2pk: projectAppsPk(input.projectId),
    gsi2sk: id,
    ...repoIndex(bound?.repository, bound?.binding, id),
  };
  // A template's variables are written with the app: never an app without them.
  const env = origin && Object.keys(origin.env).length > 0 ? await envItem(deps, actor.userId, id, origin.env) : null;
  try {
    // With the owner's app count, conditional on the plan's limit (402 over it).
    await takeCounted(deps, actor.userId, "apps", await planOf(deps, actor.userId, actor), [
      { put: item, condition: cond.notExists() },
      ...mustExist(actor.userId, input.projectId, input.serverId, 1),
      ...(env ? [{ put: env }] : []),
    ]);
  } catch (err) {
    referenceError(err, 1);
  }
  await auditAction(deps, actor, "app", "app.create", id, {
    name: item.name,
    projectId: item.projectId,
    serverId: item.serverId,
    ...(origin ? { template: origin.templateId, overwritten: origin.overwritten, env: env?.names ?? [] } : {}),
  });
  return toApp(item);
}

/**
 * Every app on a repository's branch, across owners (index gsi3: webhooks find
 * apps by repository, never by Scan): those bound by its id, and with
 * `byName` also those an admin bound by name (deliveries under the global secret).
 */
export async function appsOnRepoBranch(
  deps: Pick<Deps, "store">,
  repo: { id: number | null; fullName: string; byName: boolean },
  branch: string,
  ownerId?: string,
): Promise<AppItem[]> {
  const filter = ownerId ? cond.eq("ownerId", ownerId) : undefined;
  const [byId, byName] = await Promise.all([
    repo.id === null
      ? []
      : queryAll<AppItem>(deps.store, { index: "gsi3", pk: repoIdBranchPk(repo.id, branch), filter }),
    repo.byName
      ? queryAll<AppItem>(deps.store, { index: "gsi3", pk: repoBranchPk(repo.fullName, branch), filter })
      : [],
  ]);
  return [...byId, ...byName];
}

export async function listApps(
  deps: Pick<Deps, "store">,
  ownerId: string,
  cursor: string | undefined,
  limit: number,
  filter: { projectId?: string; status?: string } = {},
) {
  const page = filter.projectId
    ? await deps.store.query<AppItem>({
        index: "gsi2",
        pk: projectAppsPk(filter.projectId),
        cursor,
        limit,
        filter: cond.and(cond.eq("ownerId", ownerId), ...(filter.status ? [cond.eq("status", filter.status)] : [])),
      })
    : await deps.store.query<AppItem>({
        index: "gsi1",
        pk: owned.listPk(ownerId, "APP"),
        cursor,
        limit,
        filter: filter.status ? cond.eq("status", filter.status) : undefined,
      });
  return { items: page.items.map(toApp), nextCursor: page.nextCursor };
}

/** Partial update; moving a running app to another server or directory is refused (stop it first). */
export async function updateApp(deps: Deps, actor: Actor, id: string, patch: Partial<AppInput>) {
  const before = await getAppItem(deps, actor.userId, id);
  const moving =
    (patch.serverId && patch.serverId !== before.serverId) || (patch.cdPath && patch.cdPath !== before.cdPath);
  if (moving && isActive(before.status))
    throw new ConflictError(`Stop the app before moving it (it is ${before.status})`);
  const bound = patch.repository ? await bindRepository(deps, actor, id, patch.repository) : undefined;
  const repository = patch.repository === undefined ? before.repository : (bound?.repository ?? null);
  const binding = patch.repository === undefined ? before.repoBinding : bound?.binding;
  const set: Record<string, unknown> = { ...patch, updatedAt: Date.now(), version: before.version + 1 };
  if (patch.repository !== undefined) Object.assign(set, { repository, repoBinding: binding ?? null });
  if (patch.projectId) Object.assign(set, { gsi2pk: projectAppsPk(patch.projectId) });
  if (patch.commands !== undefined) set.commands = patch.commands ? { ...before.commands, ...patch.commands } : null;
  const index = repoIndex(repository, binding, id);
  Object.assign(set, index);
  const ops: TransactOp[] = [
    {
      update: {
        ...appKey(actor.userId, id),
        set,
        ...("gsi3pk" in index ? {} : { remove: ["gsi3pk", "gsi3sk"] }),
        condition: cond.eq("version", before.version),
      },
    },
  ];
  const serverChanged = patch.serverId !== undefined && patch.serverId !== before.serverId;
  if (patch.projectId || serverChanged) {
    ops.push(
      ...mustExist(
        actor.userId,
        patch.projectId ?? before.projectId,
        patch.serverId ?? before.serverId,
        serverChanged ? 1 : 0,
      ),
    );
  }
  if (serverChanged) {
    ops.push({
      update: { ...serverKey(actor.userId, before.serverId), add: { appCount: -1 }, condition: cond.exists() },
    });
  }
  try {
    await deps.store.transact(ops);
  } catch (err) {
    referenceError(err, 1);
  }
  await auditAction(deps, actor, "app", "app.update", id, { changed: Object.keys(patch) });
  return toApp(await getAppItem(deps, actor.userId, id));
}

export async function deleteApp(deps: Deps, actor: Actor, id: string) {
  const before = await getAppItem(deps, actor.userId, id);
  try {
    await releaseCounted(deps, actor.userId, "apps", [
      { delete: appKey(actor.userId, id), condition: cond.in("status", ["stopped", "error"]) },
      { delete: appEnvKey(actor.userId, id) },
      { update: { ...serverKey(actor.userId, before.serverId), add: { appCount: -1 }, condition: cond.exists() } },
    ]);
  } catch (err) {
    if (err instanceof ConditionFailedError) throw new ConflictError("Stop the app before deleting it");
    throw err;
  }
  await deps.scheduler.cancel(autoStopScheduleName(id));
  await auditAction(deps, actor, "app", "app.delete", id, { name: before.name });
}
