import { z } from "zod";
import type { Actor } from "../actor.ts";
import type { AppItem } from "../apps/entity.ts";
import { getAppItem } from "../apps/service.ts";
import { type AuditEntry, recordAudit } from "../audit/service.ts";
import {
  ConditionFailedError,
  ConflictError,
  NotFoundError,
  ServiceUnavailableError,
  ValidationError,
} from "../errors.ts";
import { githubClientFor, repoPath } from "../github/repos.ts";
import { GitHubApiError } from "../github/rest.ts";
import { newId } from "../ids.ts";
import { deployMinutesCheck, overDeployMinutes, planOf } from "../plans/quota.ts";
import type { Deps } from "../ports.ts";
import { cond } from "../store/store.ts";
import type { UsageItem } from "../usage/entity.ts";
import { type UserItem, userKeys } from "../users/entity.ts";
import {
  appDeploymentsPk,
  type Deployment,
  type DeploymentItem,
  type DeploymentStatus,
  deploymentKey,
  FINISHED,
  ownerDeploymentsPk,
  sortOf,
  type Trigger,
  toDeployment,
} from "./entity.ts";
import { deployJobOf, leaveQueue, queueOps } from "./queued.ts";

export interface NewDeployment {
  trigger: Trigger;
  ref?: string | null;
  commitSha?: string | null;
  commitMessage?: string | null;
  author?: string | null;
  redeployOf?: string | null;
}

/** A new `queued` deployment of `app`, not written yet (`queueOps` writes it with its queued marker). */
export function newDeployment(app: AppItem, input: NewDeployment, now = Date.now()): DeploymentItem {
  const id = newId("dep");
  return {
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
}

/** The audit entry of a deployment being queued (`deployment.trigger`, under the app's owner). */
export function triggerAudit(item: DeploymentItem, ipAddress: string | null): AuditEntry {
  return {
    userId: item.ownerId,
    action: "deployment.trigger",
    resourceType: "deployment",
    resourceId: item.id,
    details: { appId: item.appId, trigger: item.trigger, commitSha: item.commitSha, ref: item.ref },
    ipAddress,
  };
}

/**
 * Writes a `queued` deployment and only then enqueues `{deploymentId}`, so
 * the worker always finds what it is told to run. Used by manual deploys and
 * redeploys; webhooks write their deployments in their delivery's own
 * transaction (github/webhook-deploys.ts) and send the jobs after it.
 */
export async function queueDeployment(
  deps: Deps,
  app: AppItem,
  input: NewDeployment,
  actor: Actor | null,
): Promise<Deployment> {
  const item = newDeployment(app, input);
  const id = item.id;
  // Queued only under the owner's plan's deploy minutes for the month (a check in the same transaction).
  const plan = await planOf(deps, app.ownerId, actor);
  const quota = deployMinutesCheck(app.ownerId, plan, item.queuedAt);
  const ops = [...queueOps(item), ...(quota ? [quota] : [])];
  try {
    await deps.store.transact(ops);
  } catch (err) {
    if (err instanceof ConditionFailedError && quota && err.failedIndexes.includes(ops.length - 1)) {
      throw overDeployMinutes(plan, await deps.store.get<UsageItem>(quota.check, { consistent: true }));
    }
    throw err;
  }
  try {
    await deps.queue.send(deployJobOf(item));
  } catch (err) {
    // No job, no worker: the deployment ends now rather than waiting for one that never comes.
    deps.logger.error("could not queue a deployment", { deploymentId: id, error: err });
    await leaveQueue(deps, item, {
      status: "failed",
      finishedAt: Date.now(),
      error: "Hoist could not queue the deployment (its job queue failed); deploy again",
    }).catch(() => undefined); // taken by a worker woken for another deployment: it runs after all
    throw new ServiceUnavailableError("Could not queue the deployment; try again");
  }
  await recordAudit(deps, triggerAudit(item, actor?.ip ?? null));
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

/**
 * A manual deploy. A `sha` is deployed as given; otherwise the ref (default:
 * the app's branch) is resolved to a commit through GitHub where the owner
 * has a token, and failing that the target checks out `origin/<branch>` and
 * the deployment records the commit it ended on.
 */
export async function deployApp(deps: Deps, actor: Actor, appId: string, input: { ref?: string; sha?: string }) {
  const app = await getAppItem(deps, actor.userId, appId);
  const ref = input.ref ?? app.repository?.branch ?? null;
  const commit = input.sha
    ? { commitSha: input.sha }
    : ref && app.repository
      ? await resolveRef(deps, actor.userId, app.repository.fullName, ref)
      : {};
  return queueDeployment(deps, app, { trigger: "manual", ref, ...commit }, actor);
}

const GitHubCommit = z.object({
  sha: z.string().regex(/^[0-9a-f]{40}$/),
  commit: z.object({ message: z.string(), author: z.object({ name: z.string() }).nullish() }),
});

async function resolveRef(
  deps: Deps,
  ownerId: string,
  fullName: string,
  ref: string,
): Promise<Pick<NewDeployment, "commitSha" | "commitMessage" | "author">> {
  const user = await deps.store.get<UserItem>(userKeys.user(ownerId));
  if (!user?.githubToken) return {};
  try {
    const gh = await githubClientFor(deps, user);
    const { data } = await gh.request("GET", `${repoPath(fullName)}/commits/${encodeURIComponent(ref)}`, GitHubCommit);
    return { commitSha: data.sha, commitMessage: data.commit.message, author: data.commit.author?.name ?? null };
  } catch (err) {
    if (err instanceof GitHubApiError && [404, 422].includes(err.githubStatus))
      throw new ValidationError(`${fullName} has no branch or commit named ${JSON.stringify(ref)}`, [
        { path: "body.ref", message: "Not a branch, tag or commit of the app's repository" },
      ]);
    // GitHub unreachable: the target resolves the branch itself (and the deployment records what it got).
    deps.logger.warn("could not resolve a ref through GitHub; the target will", { ref, error: err });
    return {};
  }
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
        ? await leaveQueue(deps, item, {
            status: "cancelled",
            finishedAt: Date.now(),
            error: "Cancelled before it started",
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
