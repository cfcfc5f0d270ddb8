import type { Actor } from "../actor.ts";
import { type AppItem, appEnvKey, appKey, isActive, projectAppsPk } from "../apps/entity.ts";
import { autoStopScheduleName, deleteEndingRun } from "../apps/lifecycle.ts";
import { auditAction } from "../audit/service.ts";
import { ConditionFailedError, ConflictError, NotFoundError } from "../errors.ts";
import { newId } from "../ids.ts";
import { owned } from "../owned.ts";
import { releaseCounted } from "../plans/counts.ts";
import type { Deps } from "../ports.ts";
import { serverKey } from "../servers/entity.ts";
import { cond, queryAll, type TransactOp } from "../store/store.ts";
import { type ProjectItem, projectKey, toProject } from "./entity.ts";

export async function getProjectItem(deps: Pick<Deps, "store">, ownerId: string, id: string): Promise<ProjectItem> {
  const item = await deps.store.get<ProjectItem>(projectKey(ownerId, id));
  if (!item) throw new NotFoundError("Project");
  return item;
}

export async function createProject(deps: Deps, actor: Actor, input: { name: string; description?: string }) {
  const now = Date.now();
  const id = newId("prj");
  const item: ProjectItem = {
    ...projectKey(actor.userId, id),
    entity: "project",
    id,
    ownerId: actor.userId,
    name: input.name,
    description: input.description ?? "",
    createdAt: now,
    updatedAt: now,
    ...owned.list(actor.userId, "PROJECT", now, id),
  };
  await deps.store.put(item, { condition: cond.notExists() });
  await auditAction(deps, actor, "project", "project.create", id, { name: item.name });
  return toProject(item);
}

export async function listProjects(
  deps: Pick<Deps, "store">,
  ownerId: string,
  cursor: string | undefined,
  limit: number,
) {
  const page = await deps.store.query<ProjectItem>({
    index: "gsi1",
    pk: owned.listPk(ownerId, "PROJECT"),
    cursor,
    limit,
  });
  return { items: page.items.map(toProject), nextCursor: page.nextCursor };
}

export async function updateProject(
  deps: Deps,
  actor: Actor,
  id: string,
  patch: { name?: string; description?: string },
) {
  await getProjectItem(deps, actor.userId, id);
  const item = await deps.store.update<ProjectItem>(projectKey(actor.userId, id), {
    set: { ...patch, updatedAt: Date.now() },
    condition: cond.exists(),
  });
  await auditAction(deps, actor, "project", "project.update", id, { changed: Object.keys(patch) });
  return toProject(item);
}

/** All apps of a project (a Query on its index, page by page). */
export async function projectApps(deps: Pick<Deps, "store">, projectId: string): Promise<AppItem[]> {
  return queryAll<AppItem>(deps.store, { index: "gsi2", pk: projectAppsPk(projectId) });
}

/**
 * Deletes a project and its apps. Apps that are running (or starting or
 * stopping) make it a 409 unless `force`; forced, their auto-stop schedules
 * are cancelled and they are named in the answer and the audit log as left
 * running on their servers — nothing is stopped or dropped silently.
 */
export async function deleteProject(deps: Deps, actor: Actor, id: string, force: boolean) {
  const project = await getProjectItem(deps, actor.userId, id);
  const apps = await projectApps(deps, id);
  const active = apps.filter((a) => isActive(a.status));
  if (active.length > 0 && !force) {
    throw new ConflictError(
      `${active.length} app(s) of this project are running (${active.map((a) => a.name).join(", ")}); stop them or delete with ?force=true`,
    );
  }
  for (const app of apps) {
    // Each app goes with its env vars and its server's app count, all or nothing.
    const ops: TransactOp[] = [
      { delete: appKey(actor.userId, app.id), condition: cond.exists() },
      { delete: appEnvKey(actor.userId, app.id) },
      {
        update: {
          ...serverKey(actor.userId, app.serverId),
          add: { appCount: -1, ...(app.status === "running" ? { runningAppsCount: -1 } : {}) },
          condition: cond.exists(),
        },
      },
    ];
    // With the owner's app count (conditional on the app being there, so a racing delete counts once).
    try {
      // With the end of its run, if it was running (its last minutes booked, its runningApps slot released).
      await deleteEndingRun(deps, actor.userId, app.id, ops, (all) => releaseCounted(deps, actor.userId, "apps", all));
    } catch (err) {
      if (!(err instanceof ConditionFailedError) || (await deps.store.get(appKey(actor.userId, app.id)))) throw err;
    }
    await deps.scheduler.cancel(autoStopScheduleName(app.id));
  }
  await deps.store.delete(projectKey(actor.userId, id));
  await auditAction(deps, actor, "project", "project.delete", id, {
    name: project.name,
    appsDeleted: apps.map((a) => a.id),
    leftRunning: active.map((a) => a.id),
  });
  return {
    success: true as const,
    appsDeleted: apps.length,
    leftRunning: active.map((a) => ({ id: a.id, name: a.name })),
  };
}
