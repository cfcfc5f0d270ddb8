import type { Actor } from "../actor.ts";
import type { AppItem } from "../apps/entity.ts";
import { getAppItem } from "../apps/service.ts";
import { recordAudit } from "../audit/service.ts";
import { ConditionFailedError, ConflictError, NotFoundError } from "../errors.ts";
import { newId } from "../ids.ts";
import type { Deps } from "../ports.ts";
import { cond } from "../store/store.ts";
import {
  appDeploymentsPk,
  type Deployment,
  type DeploymentItem,
  type DeploymentStatus,
  deploymentKey,
  FINISHED,
  type LogItem,
  logSk,
  ownerDeploymentsPk,
  sortOf,
  type Trigger,
  toDeployment,
} from "./entity.ts";

export interface NewDeployment {
  trigger: Trigger;
  ref?: string | null;
  commitSha?: string | null;
  commitMessage?: string | null;
  author?: string | null;
  redeployOf?: string | null;
}

/**
 * Writes a `queued` deployment and only then enqueues `{deploymentId}`, so
 * the worker always finds what it is told to run. Used by manual deploys,
 * redeploys, push and CI webhooks alike.
 */
export async function queueDeployment(
  deps: Deps,
  app: AppItem,
  input: NewDeployment,
  actor: Actor | null,
): Promise<Deployment> {
  const now = Date.now();
  const id = newId("dep");
  const item: DeploymentItem = {
    ...deploymentKey(id),
    entity: "deployment",
    id,
    ownerId: app.ownerId,
    appId: app.id,
    status: "queued",
    trigger: input.trigger,
    ref: input.ref ?? app.repository?.branch ?? null,
    commitSha: input.commitSha ?? null,
    commitMessage: input.commitMessage ?? null,
    author: input.author ?? null,
    queuedAt: now,
    startedAt: null,
    finishedAt: null,
    durationMs: null,
    exitCode: null,
    error: null,
    redeployOf: input.redeployOf ?? null,
    logLines: 0,
    logTruncated: false,
    leaseUntil: null,
    cancelRequested: false,
    gsi1pk: appDeploymentsPk(app.id),
    gsi1sk: sortOf(now, id),
    gsi2pk: ownerDeploymentsPk(app.ownerId),
    gsi2sk: sortOf(now, id),
  };
  await deps.store.put(item, { condition: cond.notExists() });
  await deps.queue.send({ type: "deploy", deploymentId: id });
  await recordAudit(deps, {
    userId: app.ownerId,
    action: "deployment.trigger",
    resourceType: "deployment",
    resourceId: id,
    details: { appId: app.id, trigger: input.trigger, commitSha: item.commitSha, ref: item.ref },
    ipAddress: actor?.ip ?? null,
  });
  return toDeployment(item);
}

export async function getDeploymentItem(
  deps: Pick<Deps, "store">,
  ownerId: string,
  id: string,
): Promise<DeploymentItem> {
  const item = await deps.store.get<DeploymentItem>(deploymentKey(id));
  if (!item || item.ownerId !== ownerId) throw new NotFoundError("Deployment");
  return item;
}

export async function deployApp(deps: Deps, actor: Actor, appId: string, input: { ref?: string; sha?: string }) {
  const app = await getAppItem(deps, actor.userId, appId);
  return queueDeployment(deps, app, { trigger: "manual", ref: input.ref ?? null, commitSha: input.sha ?? null }, actor);
}

/** Same sha again (a rollback when the deployment is older than the current one). */
export async function redeploy(deps: Deps, actor: Actor, id: string) {
  const source = await getDeploymentItem(deps, actor.userId, id);
  const app = await getAppItem(deps, actor.userId, source.appId);
  const latest = await deps.store.query<DeploymentItem>({
    index: "gsi1",
    pk: appDeploymentsPk(app.id),
    reverse: true,
    limit: 1,
  });
  const rollback = latest.items[0]?.id !== source.id;
  return queueDeployment(
    deps,
    app,
    {
      trigger: rollback ? "rollback" : source.trigger === "rollback" ? "rollback" : "manual",
      ref: source.ref,
      commitSha: source.commitSha,
      commitMessage: source.commitMessage,
      author: source.author,
      redeployOf: source.id,
    },
    actor,
  );
}

export async function listDeployments(
  deps: Pick<Deps, "store">,
  ownerId: string,
  q: { appId?: string; status?: DeploymentStatus; limit: number; cursor?: string },
) {
  if (q.appId) await getAppItem(deps, ownerId, q.appId);
  const page = await deps.store.query<DeploymentItem>({
    index: q.appId ? "gsi1" : "gsi2",
    pk: q.appId ? appDeploymentsPk(q.appId) : ownerDeploymentsPk(ownerId),
    reverse: true,
    limit: q.limit,
    cursor: q.cursor,
    filter: q.status ? cond.eq("status", q.status) : undefined,
  });
  return { items: page.items.map(toDeployment), nextCursor: page.nextCursor };
}

export async function readLogs(deps: Pick<Deps, "store">, ownerId: string, id: string, after: number, limit: number) {
  await getDeploymentItem(deps, ownerId, id);
  const page = await deps.store.query<LogItem>({
    pk: `DEP#${id}`,
    sk: { between: [logSk(after + 1), logSk(9_999_999_999)] },
    limit,
  });
  const items = page.items.map(({ seq, ts, stream, line }) => ({ seq, ts, stream, line }));
  return { items, nextCursor: page.nextCursor === null ? null : String(items.at(-1)?.seq ?? after) };
}

/**
 * Cancels a queued deployment at once; a running one is flagged, and its
 * worker closes the SSH channel (signalling the remote process) at its next
 * heartbeat.
 */
export async function cancelDeployment(deps: Deps, actor: Actor, id: string): Promise<Deployment> {
  const item = await getDeploymentItem(deps, actor.userId, id);
  if (FINISHED.includes(item.status))
    throw new ConflictError(`The deployment already ${item.status === "cancelled" ? "was cancelled" : item.status}`);
  try {
    const after =
      item.status === "queued"
        ? await deps.store.update<DeploymentItem>(deploymentKey(id), {
            set: { status: "cancelled", finishedAt: Date.now(), error: "Cancelled before it started" },
            condition: cond.eq("status", "queued"),
          })
        : await deps.store.update<DeploymentItem>(deploymentKey(id), {
            set: { cancelRequested: true },
            condition: cond.eq("status", "running"),
          });
    await recordAudit(deps, {
      userId: actor.userId,
      action: "deployment.cancel",
      resourceType: "deployment",
      resourceId: id,
      details: { appId: item.appId, was: item.status },
      ipAddress: actor.ip,
    });
    return toDeployment(after);
  } catch (err) {
    if (err instanceof ConditionFailedError) return cancelDeployment(deps, actor, id);
    throw err;
  }
}
