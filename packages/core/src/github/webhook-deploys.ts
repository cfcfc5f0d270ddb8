import type { AppItem } from "../apps/entity.ts";
import { type AuditEntry, auditItem } from "../audit/service.ts";
import type { DeploymentItem } from "../deployments/entity.ts";
import { deployJobOf, queueOps } from "../deployments/queued.ts";
import { type NewDeployment, newDeployment, triggerAudit } from "../deployments/service.ts";
import { ConditionFailedError, type PaymentRequiredError } from "../errors.ts";
import { deployMinutesCheck, deployQuotas, type Quotas, refusalMessage, rereadQuotas } from "../plans/quota.ts";
import type { Deps } from "../ports.ts";
import { cond, type TransactOp } from "../store/store.ts";
import { claimWrite, type DeliveryRef, type Hold, inProgress, queuedUnder, rereadClaim } from "./delivery-claim.ts";
import { ciCommitKey, type DeliveryItem } from "./entity.ts";

/**
 * What a delivery does, written in one transaction (DESIGN.md § Deploy flow
 * step 1): the claim, `done`; per app a `queued` deployment, its queued marker
 * (the outbox: the stale-queue sweep wakes an app whose job was never sent),
 * the webhook's audit entry for the app and the deployment's trigger entry,
 * and a check that the owner is under their plan's deploy minutes; an owner
 * over them gets the deployment written `failed` instead, naming the limit (no
 * marker, no job: recorded, not dropped, and listed in the answer); or, when
 * nothing deploys, the delivery's own audit entry. The jobs are sent
 * after it commits, or (a queue kept in the table, embedded) written in it too. Superseding older queued deployments is the worker's
 * (it cancels all but the newest when a run ends), so nothing else is written.
 */

/** DynamoDB's TransactWriteItems limit: only a fan-out past it takes more than one transaction. */
const MAX_ACTIONS = 100;
const CI_GUARD_TTL_SECONDS = 90 * 24 * 3600;

/** What a delivery asks to deploy, and how it answers when nothing is (or was) queued. */
export interface Work {
  deploy?: {
    apps: AppItem[];
    /** The commit every app deploys. */
    input: NewDeployment & { trigger: "push" | "ci-success"; ref: string; commitSha: string };
  };
  otherwise: { status: "pong" | "ignored"; reason?: string };
}

export type Committed =
  | { duplicate: DeliveryItem }
  | {
      status: "accepted" | "pong" | "ignored";
      reason?: string;
      /** The deployments of the delivery's apps, in their order (some may have been queued by a dead attempt). */
      deployments: string[];
      /** Those this attempt wrote whose jobs are still to send (none when the queue took them in the transaction). */
      fresh: DeploymentItem[];
    };

type Pending = { app: AppItem; dep: DeploymentItem };

/**
 * Commits the delivery (see above). A claim lost to a racing attempt is read
 * once: a finished one makes this a duplicate, a live one a 503, a dead one is
 * taken over and only what it left is done. A green CI run's commit already
 * deployed to an app (its guard held) drops that app and the rest commit.
 */
export async function commitDelivery(
  deps: Pick<Deps, "store" | "queue" | "exclusiveInstanceId" | "config">,
  d: DeliveryRef & { ip: string | null },
  start: Hold,
  work: Work,
): Promise<Committed> {
  let hold = start;
  const skip = new Set<string>();
  const queued = queuedUnder(start);
  const owners = (work.deploy?.apps ?? []).filter((app) => !queued[app.id]).map((app) => app.ownerId);
  const quotas = await deployQuotas(deps, owners, Date.now());
  for (let attempt = 0; ; attempt++) {
    const result = await tryCommit(deps, d, hold, work, skip, quotas);
    if (result !== "lost") return result;
    if (attempt >= 2) throw inProgress(Date.now());
    const standing = await rereadClaim(deps, d.deliveryId);
    if ("duplicate" in standing) return standing;
    hold = standing.hold;
  }
}

async function tryCommit(
  deps: Pick<Deps, "store" | "queue" | "exclusiveInstanceId">,
  d: DeliveryRef & { ip: string | null },
  start: Hold,
  work: Work,
  skip: Set<string>,
  quotas: Quotas,
): Promise<Committed | "lost"> {
  const queued = queuedUnder(start);
  const now = Date.now();
  const deploy = work.deploy;
  const pending: Pending[] = deploy
    ? deploy.apps
        .filter((app) => !queued[app.id] && !skip.has(app.id))
        .map((app) => ({ app, dep: newDeployment(app, deploy.input, now) }))
    : [];
  const withJob = deps.queue.sendWith !== undefined; // the jobs go in the transaction (embedded)
  const perApp = (deploy?.input.trigger === "ci-success" ? 5 : 4) + (withJob ? 1 : 0) + (quotas.size > 0 ? 1 : 0);
  const chunks = chunk(pending, Math.floor((MAX_ACTIONS - 1) / perApp));
  const answer = (all: Record<string, string>) => {
    const deployments = (deploy?.apps ?? []).flatMap((app) => all[app.id] ?? []);
    return deployments.length > 0 ? { status: "accepted" as const, deployments } : { ...work.otherwise, deployments };
  };

  let hold = start;
  const fresh: DeploymentItem[] = [];
  for (const [i, part] of chunks.entries()) {
    const last = i === chunks.length - 1;
    let batch = part;
    for (;;) {
      const next = { ...queued, ...Object.fromEntries(batch.map((p) => [p.app.id, p.dep.id])) };
      const reply = answer(next);
      const ops: TransactOp[] = [
        claimWrite(deps, d, hold, {
          state: last ? "done" : "processing",
          queued: next,
          outcome: last ? reply.status : null,
        }),
      ];
      const guards = new Map<number, string>();
      const checks = new Map<number, string>();
      const checked = new Set<string>();
      const jobs: { committed(): void; failed(): void }[] = [];
      for (const { app, dep } of batch) {
        const quota = quotas.get(app.ownerId);
        if (quota?.over) {
          // Over the owner's deploy minutes: recorded as failed, with the reason (no marker, no job).
          const failed = refused(dep, quota.over, now);
          ops.push({ put: failed, condition: cond.notExists() }, { put: auditItem(webhookAudit(d, app, failed), now) });
          continue;
        }
        // Its owner's deploy minutes checked in the transaction too (once: an item is touched once per transaction).
        const check = quota && !checked.has(app.ownerId) ? deployMinutesCheck(app.ownerId, quota.plan, now) : undefined;
        if (check) {
          checked.add(app.ownerId);
          checks.set(ops.length, app.ownerId);
          ops.push(check);
        }
        const job = deps.queue.sendWith?.(deployJobOf(dep));
        if (job) {
          ops.push(job.op);
          jobs.push(job);
        }
        ops.push(...queueOps(dep), { put: auditItem(webhookAudit(d, app, dep), now) });
        ops.push({ put: auditItem(triggerAudit(dep, d.ip), now) });
        if (dep.trigger === "ci-success") {
          guards.set(ops.length, app.id);
          ops.push(ciCommitGuard(app.id, dep.commitSha ?? ""));
        }
      }
      if (last && reply.deployments.length === 0) ops.push({ put: auditItem(deliveryAudit(d, reply), now) });
      try {
        await deps.store.transact(ops);
      } catch (err) {
        for (const job of jobs) job.failed();
        if (!(err instanceof ConditionFailedError)) throw err;
        if (err.failedIndexes.includes(0)) {
          // Past our own first write: we stalled beyond CLAIM_STALE_MS and a redelivery took over (it finishes, and answers).
          if (hold.kind === "ours") throw inProgress(Date.now());
          return "lost"; // another attempt claimed it first: read it again
        }
        const deployed = err.failedIndexes.flatMap((index) => guards.get(index) ?? []);
        const spent = err.failedIndexes.flatMap((index) => checks.get(index) ?? []);
        if (deployed.length === 0 && spent.length === 0) throw err;
        // An owner's deploy minutes ran out since they were read: their apps are recorded as failed instead.
        if (spent.length > 0) await rereadQuotas(deps, quotas, spent, now);
        // This commit already deployed (or is queued) there: a green run of another workflow got it first.
        for (const appId of deployed) skip.add(appId);
        batch = batch.filter((p) => !skip.has(p.app.id));
        continue;
      }
      Object.assign(queued, next);
      for (const job of jobs) job.committed();
      if (!withJob) fresh.push(...batch.filter((p) => !quotas.get(p.app.ownerId)?.over).map((p) => p.dep));
      hold = { kind: "ours", queued: { ...queued } };
      if (last) return { ...reply, fresh };
      break;
    }
  }
  throw new Error("unreachable: the last chunk returns");
}

/** A deployment refused for its owner's plan: written `failed` at once, the limit named in its error. */
const refused = (dep: DeploymentItem, over: PaymentRequiredError, now: number): DeploymentItem => ({
  ...dep,
  status: "failed",
  finishedAt: now,
  error: refusalMessage(over),
});

function chunk<T>(items: T[], size: number): T[][] {
  if (items.length === 0) return [[]];
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** The webhook's entry for an app it deployed (under the app's owner). */
function webhookAudit(d: DeliveryRef & { ip: string | null }, app: AppItem, dep: DeploymentItem): AuditEntry {
  return {
    userId: app.ownerId,
    action: "github.webhook",
    resourceType: "app",
    resourceId: app.id,
    details: {
      event: dep.trigger === "push" ? "push" : "workflow_run",
      deliveryId: d.deliveryId,
      repo: d.repo,
      ref: dep.ref,
      commitSha: dep.commitSha,
      deploymentId: dep.id,
      ...(dep.status === "failed" ? { refused: dep.error } : {}),
    },
    ipAddress: d.ip,
  };
}

/** A delivery that deployed nothing is audited once, with no user. */
function deliveryAudit(d: DeliveryRef & { ip: string | null }, reply: { status: string; reason?: string }): AuditEntry {
  return {
    userId: null,
    action: "github.webhook",
    resourceType: "github-delivery",
    resourceId: d.deliveryId,
    details: {
      event: d.event,
      deliveryId: d.deliveryId,
      repo: d.repo,
      outcome: reply.status,
      reason: reply.reason ?? null,
    },
    ipAddress: d.ip,
  };
}

/** One `ci-success` deployment per app and commit, however many workflows (or reruns) go green for it. */
function ciCommitGuard(appId: string, sha: string): TransactOp {
  return {
    put: {
      ...ciCommitKey(appId, sha),
      entity: "ci-deploy-guard",
      expiresAt: Math.floor(Date.now() / 1000) + CI_GUARD_TTL_SECONDS,
    },
    condition: cond.notExists(),
  };
}
