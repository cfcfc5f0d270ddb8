import type { AppItem } from "../apps/entity.ts";
import { deployJobOf } from "../deployments/queued.ts";
import { HoistError } from "../errors.ts";
import { newToken } from "../ids.ts";
import type { Deps } from "../ports.ts";
import { isSuccess, type RunOutcome, recordWorkflowRun } from "../workflow-runs/service.ts";
import { type Claimable, claimFirst, type DeliveryRef } from "./delivery-claim.ts";
import type { AppHookItem, RepoSecretItem } from "./repo-entity.ts";
import { type FailureWindow, refuseIfOver } from "./signature-failures.ts";
import { authenticate, type DeliveryScope, secretRef } from "./webhook-auth.ts";
import { type Committed, commitDelivery, type Work } from "./webhook-deploys.ts";
import { deliveryHeaders, type Plan, type PushPlan, parseBody, planEvent } from "./webhook-plan.ts";
import { appsDeployingOn, runOwnersInScope, workflowsPassed } from "./webhook-scope.ts";

/**
 * GitHub webhook deliveries (API.md § GitHub, DESIGN.md § Deploy flow step 1).
 * A push that deploys awaits, in order:
 * 1. the secret of the repository the payload names (or of the app's own
 *    hook), then the signature is verified and the headers and payload
 *    validated (a failed signature reads the sender's failure count: past
 *    it, 429);
 * 2. the query for the apps on the repository's branch (webhook-scope.ts; and, only where a plan
 *    limits deploy minutes, one BatchGetItem of their owners' plans and usage);
 * 3. one TransactWriteItems: the claim, the deployments with their queued
 *    markers, the audit entries, and (embedded) their jobs
 *    (webhook-deploys.ts, delivery-claim.ts). A delivery seen before fails the
 *    claim's condition and is read once: `duplicate`.
 * Embedded, 1 and 2 are remembered until a write changes them
 * (adapters/local/binding-cache.ts), so a push is its one transaction. On SQS
 * the jobs are sent after it. Never an SSH or GitHub call, so the answer
 * comes in milliseconds.
 */

export interface IncomingWebhook {
  /** Set at an app's own hook URL (`/api/webhooks/github/apps/{appId}`). */
  appId?: string;
  event: string | undefined;
  deliveryId: string | undefined;
  signature: string | undefined;
  /** The raw body, exactly as received: the signature covers these bytes. */
  body: string;
  ip: string | null;
  /** The sender's signature-failure window, read when the signature fails (null: checked already, or no limit). */
  failures?: FailureWindow | null;
}

export interface WebhookReply {
  status: "pong" | "accepted" | "ignored" | "duplicate";
  event: string;
  deliveryId: string;
  /** Ids of the deployments this delivery queued (for a duplicate: those the first one queued). */
  deployments: string[];
  reason?: string;
  zen?: string;
}

/** Handles one delivery end to end; the HTTP status is 200 for a ping and 202 otherwise. */
export async function handleWebhook(
  deps: Deps,
  req: IncomingWebhook,
): Promise<{ code: 200 | 202; reply: WebhookReply }> {
  const payload = parseBody(req.body);
  const secret = secretRef(req.appId, payload);
  const secretItem = secret ? await deps.store.get<AppHookItem | RepoSecretItem>(secret.key) : undefined;
  const scope = await authenticate(deps, req, secret, secretItem).catch(async (err: unknown) => {
    // A sender past its failures this minute is told so (429), not which signature was wrong.
    if (req.failures && err instanceof HoistError && err.code === "invalid_signature")
      refuseIfOver(req.failures, await deps.store.get(req.failures.key));
    throw err;
  });
  const { event, deliveryId } = deliveryHeaders(req);
  const plan = planEvent(event, payload);
  const base = { event, deliveryId };
  const d = { deliveryId, event, repo: plan.repo, claimId: newToken(), ip: req.ip };

  // Claimed as new: a delivery seen before fails the claim's condition, and one read then says what it was.
  const hold = { kind: "new" } as const;
  const done =
    plan.kind === "workflow_run"
      ? await handleWorkflowRun(deps, d, hold, plan.run, scope)
      : await commitDelivery(deps, d, hold, await workFor(deps, plan, scope));
  if ("duplicate" in done) {
    return {
      code: 202,
      reply: { status: "duplicate", ...base, deployments: Object.values(done.duplicate.queued ?? {}) },
    };
  }

  await sendJobs(deps, done);
  const reply: WebhookReply = {
    status: done.status,
    ...base,
    deployments: done.deployments,
    ...(done.reason ? { reason: done.reason } : {}),
    ...(plan.kind === "ping" && plan.zen ? { zen: plan.zen } : {}),
  };
  deps.logger.info("github webhook", {
    ...base,
    repo: plan.repo,
    outcome: reply.status,
    deployments: reply.deployments,
  });
  return { code: plan.kind === "ping" ? 200 : 202, reply };
}

/** A push's apps (one query, or two at once under the global secret); a ping or an ignored event deploys nothing. */
async function workFor(deps: Deps, plan: Exclude<Plan, { kind: "workflow_run" }>, scope: DeliveryScope) {
  if (plan.kind === "ping") return { otherwise: { status: "pong" } } satisfies Work;
  if (plan.kind === "ignore") return { otherwise: { status: "ignored", reason: plan.reason } } satisfies Work;
  const apps = await appsDeployingOn(deps, scope, { id: plan.repoId, fullName: plan.repo }, plan.branch, "push");
  return {
    deploy: { apps, input: deploymentOf(plan, "push") },
    otherwise: { status: "ignored", reason: `No app auto-deploys ${plan.repo}@${plan.branch} on push` },
  } satisfies Work;
}

const deploymentOf = (plan: Omit<PushPlan, "kind">, trigger: "push" | "ci-success") => ({
  trigger,
  ref: plan.branch,
  commitSha: plan.commitSha,
  commitMessage: plan.commitMessage,
  author: plan.author,
});

/**
 * `workflow_run`: claimed first (its records and incidents are writes of
 * their own), recorded for its owners (incidents open, link or resolve
 * there), then — for a green, trusted run — the apps with `deployOn:
 * ci-success` deploy its head commit, in the transaction that finishes the claim.
 */
async function handleWorkflowRun(
  deps: Deps,
  d: DeliveryRef & { ip: string | null },
  start: Claimable,
  run: Extract<Plan, { kind: "workflow_run" }>["run"],
  scope: DeliveryScope,
): Promise<Committed> {
  const claimed = await claimFirst(deps, d, start);
  if ("duplicate" in claimed) return claimed;
  const outcome: RunOutcome = await recordWorkflowRun(deps, run, await runOwnersInScope(deps, scope, run));
  if (outcome.owners.length === 0) {
    const otherwise = { status: "ignored" as const, reason: `No Hoist user connected ${run.repo}` };
    return commitDelivery(deps, d, claimed.hold, { otherwise });
  }
  const commit = { repo: run.repo, commitSha: run.headSha };
  const apps: AppItem[] = [];
  // An out-of-order event (older than what is stored for every owner) triggers nothing; an untrusted one
  // (a fork's, a pull request's) never deploys.
  if (run.trusted && isSuccess(run) && outcome.applied.length > 0) {
    const repo = { id: run.repoId, fullName: run.repo };
    for (const app of await appsDeployingOn(deps, scope, repo, run.branch, "ci-success"))
      if (await workflowsPassed(deps, app, commit)) apps.push(app);
  }
  // As for a push, `accepted` means deployments were queued; the run itself was recorded either way.
  const incidents = outcome.incidents.length + outcome.resolved.length;
  const reason =
    `Run ${run.runId} (${run.status}${run.conclusion ? `/${run.conclusion}` : ""}) recorded for ` +
    `${outcome.applied.length} of ${outcome.owners.length} user(s)` +
    (incidents > 0 ? `; ${incidents} incident(s) updated` : "") +
    "; nothing to deploy";
  const input = deploymentOf({ ...run, commitSha: run.headSha }, "ci-success");
  return commitDelivery(deps, d, claimed.hold, { deploy: { apps, input }, otherwise: { status: "ignored", reason } });
}

/**
 * The jobs of the deployments just committed. A send that fails leaves its
 * deployment queued, marker and all: the stale-queue sweep wakes its app.
 */
async function sendJobs(deps: Pick<Deps, "queue" | "logger">, done: Extract<Committed, { fresh: unknown }>) {
  await Promise.all(
    done.fresh.map((dep) =>
      deps.queue.send(deployJobOf(dep)).catch((err: unknown) =>
        deps.logger.error("could not send a deployment's job; the stale-queue sweep will wake its app", {
          deploymentId: dep.id,
          error: err,
        }),
      ),
    ),
  );
}
