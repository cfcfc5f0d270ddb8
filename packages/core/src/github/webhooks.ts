import { verify } from "@octokit/webhooks-methods";
import { z } from "zod";
import type { AppItem } from "../apps/entity.ts";
import { appKey } from "../apps/entity.ts";
import { appsOnRepoBranch } from "../apps/service.ts";
import { recordAudit } from "../audit/service.ts";
import { queueDeployment } from "../deployments/service.ts";
import { ConditionFailedError, HoistError, ValidationError } from "../errors.ts";
import { newToken } from "../ids.ts";
import type { Deps } from "../ports.ts";
import { cond, type TransactOp } from "../store/store.ts";
import {
  isSuccess,
  type RunOutcome,
  type RunPlan,
  recordWorkflowRun,
  succeededWorkflows,
  toRunPlan,
  WorkflowRunPayload,
} from "../workflow-runs/service.ts";
import { CLAIM_STALE_MS, ciCommitKey, DELIVERY_TTL_SECONDS, type DeliveryItem, deliveryKey } from "./entity.ts";
import {
  type AppHookItem,
  appHookContext,
  appHookKey,
  type RepoSecretItem,
  repoSecretContext,
  repoSecretKey,
} from "./repo-entity.ts";
import { repoConnections } from "./repos.ts";

/**
 * GitHub webhook deliveries (API.md § GitHub, DESIGN.md § Deploy flow step 1):
 * verify the signature, dedupe on the delivery id, match apps by `repo#branch`,
 * queue their deployments, answer. Only table writes and queue sends happen
 * here — never SSH or GitHub calls — so the answer comes in milliseconds.
 *
 * Dedupe and crash safety. The delivery id is *claimed* first (conditional
 * put, state `processing`, a fresh `claimId`), the work is done, and the claim
 * is then marked `done`:
 * - recording the delivery only after queueing would let a redelivery that
 *   races the first attempt queue everything twice;
 * - recording it as done before queueing would drop the deploy for good if
 *   we crashed in between, since every redelivery would be "a duplicate".
 * So a claim still `processing` after CLAIM_STALE_MS (the handler died: the
 * work takes milliseconds, and GitHub gives up after 10 s) may be taken over
 * by a redelivery (a conditional update on the old `claimId`); a fresh one
 * answers the redelivery 503 with Retry-After (its outcome is not known yet),
 * and a finished one makes it a 202 `duplicate`. Each deployment is queued in
 * one transaction with the claim's `queued[appId]`, so a takeover does only
 * what is left, and no crash can queue a commit twice or lose one.
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

const EVENT = /^[a-z][a-z_]{0,63}$/;
const DELIVERY_ID = /^[A-Za-z0-9._:-]{1,100}$/;
const SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const NULL_SHA = /^0+$/;

/** Constant-time check of `X-Hub-Signature-256` (`sha256=<hex HMAC of the body>`). */
export async function verifySignature(secret: string, body: string, signature: string): Promise<boolean> {
  try {
    return await verify(secret, body, signature);
  } catch {
    // An empty body or signature: nothing GitHub would send.
    return false;
  }
}

const invalidSignature = (detail: string) => new HoistError(401, "invalid_signature", detail);

const PushPayload = z.object({
  ref: z.string().min(1).max(1024),
  after: z.string().max(64),
  deleted: z.boolean().optional(),
  repository: z.object({ id: z.number().int().optional(), full_name: z.string().min(3).max(200) }),
  head_commit: z
    .object({
      message: z.string().nullish(),
      author: z.object({ name: z.string().nullish() }).nullish(),
    })
    .nullish(),
  pusher: z.object({ name: z.string().nullish() }).nullish(),
});

type Plan =
  | { kind: "ping"; repo: string | null; zen: string | null }
  | { kind: "ignore"; repo: string | null; reason: string }
  | { kind: "workflow_run"; repo: string; run: RunPlan }
  | {
      kind: "push";
      repo: string;
      repoId: number | null;
      branch: string;
      commitSha: string;
      commitMessage: string | null;
      author: string | null;
    };

/**
 * Who vouches for a delivery, which decides the apps it may reach:
 * - `repository`: signed with the secret of the repository it names: apps bound to that repository's id;
 * - `global`: signed with the operator's HOIST_GITHUB_WEBHOOK_SECRET, trusted for every repository: apps
 *   bound by id, and those admins bound by name;
 * - `app`: signed with one app's own hook secret, at that app's hook URL: that app alone.
 */
export type DeliveryScope =
  | { kind: "repository"; repoId: number }
  | { kind: "global" }
  | { kind: "app"; ownerId: string; appId: string };

/**
 * Verifies the signature with the secret of the repository the payload names
 * (read after a size-bounded parse, before any other work), or the operator's
 * global secret, or, at an app's own hook URL, that app's secret.
 */
async function authenticate(
  deps: Pick<Deps, "store" | "config" | "keyVault">,
  req: IncomingWebhook,
  payload: unknown,
): Promise<DeliveryScope> {
  const signature = req.signature;
  if (!signature) throw invalidSignature("Missing X-Hub-Signature-256 header");
  const mismatch = () => invalidSignature("X-Hub-Signature-256 does not match the body");
  if (req.appId) {
    const hook = await deps.store.get<AppHookItem>(appHookKey(req.appId));
    if (!hook) throw mismatch();
    const secret = await deps.keyVault.decrypt(hook.secret, appHookContext(req.appId));
    if (!(await verifySignature(secret, req.body, signature))) throw mismatch();
    return { kind: "app", ownerId: hook.ownerId, appId: hook.appId };
  }
  const repoId = (payload as { repository?: { id?: unknown } } | undefined)?.repository?.id;
  if (typeof repoId === "number" && Number.isSafeInteger(repoId)) {
    const item = await deps.store.get<RepoSecretItem>(repoSecretKey(repoId));
    if (item) {
      const secret = await deps.keyVault.decrypt(item.secret, repoSecretContext(repoId));
      if (await verifySignature(secret, req.body, signature)) return { kind: "repository", repoId };
    }
  }
  const global = deps.config.github.webhookSecret;
  if (global && (await verifySignature(global, req.body, signature))) return { kind: "global" };
  throw mismatch();
}

/** Everything up to the first write: authenticate, validate, decide. Throws 401/400. */
export async function planDelivery(
  deps: Pick<Deps, "store" | "config" | "keyVault">,
  req: IncomingWebhook,
): Promise<{ event: string; deliveryId: string; plan: Plan; scope: DeliveryScope }> {
  let payload: unknown;
  try {
    payload = JSON.parse(req.body);
  } catch {
    payload = undefined; // judged after the signature: an unsigned body learns nothing
  }
  const scope = await authenticate(deps, req, payload);
  const event = req.event?.trim() ?? "";
  const deliveryId = req.deliveryId?.trim() ?? "";
  const bad = [
    ...(EVENT.test(event) ? [] : [{ path: "header.x-github-event", message: "Required: a GitHub event name" }]),
    ...(DELIVERY_ID.test(deliveryId)
      ? []
      : [{ path: "header.x-github-delivery", message: "Required: up to 100 letters, digits, '-', '_', '.', ':'" }]),
  ];
  if (bad.length > 0) throw new ValidationError("Missing or invalid GitHub delivery headers", bad);

  if (payload === undefined) throw new ValidationError("Malformed JSON in request body");
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    throw new ValidationError("The webhook payload must be a JSON object");
  }
  return { event, deliveryId, plan: planEvent(event, payload as Record<string, unknown>), scope };
}

function planEvent(event: string, payload: Record<string, unknown>): Plan {
  const repository = payload.repository as { full_name?: unknown } | null | undefined;
  const repo = typeof repository?.full_name === "string" ? repository.full_name.slice(0, 200) : null;
  if (event === "ping") return { kind: "ping", repo, zen: typeof payload.zen === "string" ? payload.zen : null };
  if (event === "workflow_run") return planWorkflowRun(payload);
  if (event !== "push") return { kind: "ignore", repo, reason: `${event} events are not handled` };

  const parsed = PushPayload.safeParse(payload);
  if (!parsed.success) {
    throw new ValidationError(
      "Not a push event payload",
      parsed.error.issues.map((i) => ({ path: ["body", ...i.path.map(String)].join("."), message: i.message })),
    );
  }
  const push = parsed.data;
  const fullName = push.repository.full_name;
  if (!push.ref.startsWith("refs/heads/")) {
    const what = push.ref.startsWith("refs/tags/") ? "a tag push" : "not a branch push";
    return { kind: "ignore", repo: fullName, reason: `${push.ref} is ${what}` };
  }
  const branch = push.ref.slice("refs/heads/".length);
  if (push.deleted === true || NULL_SHA.test(push.after)) {
    return { kind: "ignore", repo: fullName, reason: `Branch ${branch} was deleted` };
  }
  if (!SHA.test(push.after)) {
    throw new ValidationError("Not a push event payload", [{ path: "body.after", message: "A commit SHA" }]);
  }
  return {
    kind: "push",
    repo: fullName,
    repoId: push.repository.id ?? null,
    branch,
    commitSha: push.after,
    commitMessage: push.head_commit?.message?.slice(0, 4000) ?? null,
    author: (push.head_commit?.author?.name ?? push.pusher?.name)?.slice(0, 200) ?? null,
  };
}

function planWorkflowRun(payload: Record<string, unknown>): Plan {
  const parsed = WorkflowRunPayload.safeParse(payload);
  if (!parsed.success) {
    throw new ValidationError(
      "Not a workflow_run event payload",
      parsed.error.issues.map((i) => ({ path: ["body", ...i.path.map(String)].join("."), message: i.message })),
    );
  }
  const run = toRunPlan(parsed.data);
  const repo = parsed.data.repository.full_name;
  if (!run) return { kind: "ignore", repo, reason: "The workflow run has no head branch" };
  return { kind: "workflow_run", repo, run };
}

/** Handles one delivery end to end; the HTTP status is 200 for a ping and 202 otherwise. */
export async function handleWebhook(
  deps: Deps,
  req: IncomingWebhook,
): Promise<{ code: 200 | 202; reply: WebhookReply }> {
  const { event, deliveryId, plan, scope } = await planDelivery(deps, req);
  const base = { event, deliveryId };

  const claim = await claimDelivery(deps, deliveryId, event, plan.repo);
  if ("duplicate" in claim) {
    return {
      code: 202,
      reply: { status: "duplicate", ...base, deployments: Object.values(claim.duplicate.queued ?? {}) },
    };
  }

  let reply: WebhookReply;
  if (plan.kind === "push") {
    const deployments = await deployPush(deps, claim.item, plan, scope, req.ip);
    reply =
      deployments.length > 0
        ? { status: "accepted", ...base, deployments }
        : {
            status: "ignored",
            ...base,
            deployments,
            reason: `No app auto-deploys ${plan.repo}@${plan.branch} on push`,
          };
  } else if (plan.kind === "workflow_run") {
    reply = await handleWorkflowRun(deps, claim.item, plan.run, scope, req.ip, base);
  } else if (plan.kind === "ping") {
    reply = { status: "pong", ...base, deployments: [], ...(plan.zen ? { zen: plan.zen } : {}) };
  } else {
    reply = { status: "ignored", ...base, deployments: [], reason: plan.reason };
  }

  // Deployments were audited per app owner as they were queued; anything else once, with no user.
  if (reply.deployments.length === 0) {
    await recordAudit(deps, {
      userId: null,
      action: "github.webhook",
      resourceType: "github-delivery",
      resourceId: deliveryId,
      details: { event, deliveryId, repo: plan.repo, outcome: reply.status, reason: reply.reason ?? null },
      ipAddress: req.ip,
    });
  }
  await holdClaim(deps, claim.item, { state: "done", finishedAt: Date.now(), outcome: reply.status });
  deps.logger.info("github webhook", {
    ...base,
    repo: plan.repo,
    outcome: reply.status,
    deployments: reply.deployments,
  });
  return { code: plan.kind === "ping" ? 200 : 202, reply };
}

/** Claims the delivery id (or takes over a stale claim); `duplicate` when another attempt has or holds it. */
async function claimDelivery(
  deps: Pick<Deps, "store" | "exclusiveInstanceId">,
  deliveryId: string,
  event: string,
  repo: string | null,
): Promise<{ item: DeliveryItem } | { duplicate: DeliveryItem }> {
  const key = deliveryKey(deliveryId);
  for (let attempt = 0; ; attempt++) {
    const now = Date.now();
    const item: DeliveryItem = {
      ...key,
      entity: "github-delivery",
      id: deliveryId,
      event,
      repo,
      state: "processing",
      claimId: newToken(),
      claimedAt: now,
      ...(deps.exclusiveInstanceId ? { instanceId: deps.exclusiveInstanceId } : {}),
      receivedAt: now,
      finishedAt: null,
      queued: {},
      outcome: null,
      expiresAt: Math.floor(now / 1000) + DELIVERY_TTL_SECONDS,
    };
    try {
      await deps.store.put(item, { condition: cond.notExists() });
      return { item };
    } catch (err) {
      if (!(err instanceof ConditionFailedError)) throw err;
    }
    const existing = await deps.store.get<DeliveryItem>(key, { consistent: true });
    // Gone in between (expired and swept): claim again.
    if (!existing) {
      if (attempt < 2) continue;
      throw new Error(`Could not claim GitHub delivery ${deliveryId}`);
    }
    if (existing.state !== "processing") return { duplicate: existing };
    // Another attempt is at it, or died at it: either way its answer is not ours to give. Ask again later.
    const orphaned = deps.exclusiveInstanceId !== undefined && existing.instanceId !== deps.exclusiveInstanceId;
    if (existing.claimedAt > now - CLAIM_STALE_MS && !orphaned) throw inProgress(existing.claimedAt);
    try {
      const taken = await deps.store.update<DeliveryItem>(key, {
        set: { claimId: item.claimId, claimedAt: now, instanceId: deps.exclusiveInstanceId ?? null },
        condition: cond.and(cond.eq("state", "processing"), cond.eq("claimId", existing.claimId)),
      });
      return { item: taken };
    } catch (err) {
      if (!(err instanceof ConditionFailedError)) throw err;
      // Another redelivery took it over first: done by now, or still its to finish.
      const current = await deps.store.get<DeliveryItem>(key, { consistent: true });
      if (current?.state === "done") return { duplicate: current };
      throw inProgress(current?.claimedAt ?? now);
    }
  }
}

/** 503 + Retry-After: the delivery's outcome is not known yet (GitHub's "Redeliver" later gets it). */
export class DeliveryInProgressError extends HoistError {
  override name = "DeliveryInProgressError";
  constructor(retryAfterSeconds: number) {
    super(503, "delivery_in_progress", "This delivery is being processed; redeliver it shortly", {
      headers: { "Retry-After": String(retryAfterSeconds) },
    });
  }
}
const inProgress = (claimedAt: number) =>
  new DeliveryInProgressError(Math.max(1, Math.ceil((claimedAt + CLAIM_STALE_MS - Date.now()) / 1000)));

/**
 * Writes progress (or completion) on the claim, only while it is still ours;
 * false when we stalled past CLAIM_STALE_MS and a redelivery took it over (it finishes the rest).
 */
async function holdClaim(deps: Pick<Deps, "store" | "logger">, claim: DeliveryItem, set: Partial<DeliveryItem>) {
  try {
    await deps.store.update(deliveryKey(claim.id), { set, condition: cond.eq("claimId", claim.claimId) });
    return true;
  } catch (err) {
    if (!(err instanceof ConditionFailedError)) throw err;
    deps.logger.warn("github delivery taken over by a redelivery", { deliveryId: claim.id });
    return false;
  }
}

/**
 * Who a workflow run is recorded for: the owners the delivery's scope reaches
 * (those who connected the repository or have an app on its branch). A
 * repository's or app's own hook speaks for nobody else.
 */
async function runOwnersInScope(deps: Pick<Deps, "store">, scope: DeliveryScope, run: RunPlan): Promise<string[]> {
  if (scope.kind === "app") return [scope.ownerId];
  const repo = { id: scope.kind === "repository" ? scope.repoId : run.repoId, fullName: run.repo };
  const apps = await appsInScope(deps, scope, repo, run.branch);
  const connected = (await repoConnections(deps, run.repo)).filter(
    (c) => scope.kind === "global" || c.repoId === repo.id,
  );
  return [...new Set([...apps.map((a) => a.ownerId), ...connected.map((c) => c.ownerId)])].sort();
}

/** The deployment, its queued marker, the claim's progress, then this guard: its index in the transaction. */
const CI_GUARD_INDEX = 3;
const CI_GUARD_TTL_SECONDS = 90 * 24 * 3600;

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

/** An app that names the workflows that must pass deploys only once every one of them succeeded for the commit. */
async function workflowsPassed(
  deps: Pick<Deps, "store">,
  app: AppItem,
  plan: { repo: string; commitSha: string },
): Promise<boolean> {
  const required = app.repository?.workflows ?? [];
  if (required.length === 0) return true;
  const passed = await succeededWorkflows(deps, app.ownerId, plan.repo, plan.commitSha);
  return required.every((name) => passed.has(name));
}

/** The apps a delivery in `scope` may reach on the repository's branch, wherever they are bound. */
export async function appsInScope(
  deps: Pick<Deps, "store">,
  scope: DeliveryScope,
  repo: { id: number | null; fullName: string },
  branch: string,
): Promise<AppItem[]> {
  if (scope.kind === "app") {
    const app = await deps.store.get<AppItem>(appKey(scope.ownerId, scope.appId));
    const r = app?.repository;
    const same =
      r && (typeof r.id === "number" ? r.id === repo.id : r.fullName.toLowerCase() === repo.fullName.toLowerCase());
    return app && same && r.branch === branch ? [app] : [];
  }
  const id = scope.kind === "repository" ? scope.repoId : repo.id;
  return appsOnRepoBranch(deps, { id, fullName: repo.fullName, byName: scope.kind === "global" }, branch);
}

/** Apps with autoDeploy on the repository's branch that deploy on `on`, as far as `scope` reaches. */
export async function appsDeployingOn(
  deps: Pick<Deps, "store">,
  scope: DeliveryScope,
  repo: { id: number | null; fullName: string },
  branch: string,
  on: "push" | "ci-success",
): Promise<AppItem[]> {
  const apps = await appsInScope(deps, scope, repo, branch);
  return apps.filter((app) => {
    const r = app.repository;
    return r?.autoDeploy === true && r.deployOn === on && r.branch === branch;
  });
}

/**
 * `workflow_run`: record the run for its owners (incidents open, link or
 * resolve there), then — for a green run — deploy the apps with
 * `deployOn: ci-success` at the run's head sha, like a push.
 */
async function handleWorkflowRun(
  deps: Deps,
  claim: DeliveryItem,
  run: RunPlan,
  scope: DeliveryScope,
  ip: string | null,
  base: { event: string; deliveryId: string },
): Promise<WebhookReply> {
  const outcome: RunOutcome = await recordWorkflowRun(deps, run, await runOwnersInScope(deps, scope, run));
  if (outcome.owners.length === 0) {
    return { status: "ignored", ...base, deployments: [], reason: `No Hoist user connected ${run.repo}` };
  }
  let deployments: string[] = [];
  // An out-of-order event (older than what is stored for every owner) triggers nothing; an untrusted one
  // (a fork's, a pull request's) never deploys.
  if (run.trusted && isSuccess(run) && outcome.applied.length > 0) {
    deployments = await deployPush(
      deps,
      claim,
      {
        kind: "push",
        repo: run.repo,
        repoId: run.repoId,
        branch: run.branch,
        commitSha: run.headSha,
        commitMessage: run.commitMessage,
        author: run.author,
      },
      scope,
      ip,
      "ci-success",
    );
  }
  if (deployments.length > 0) return { status: "accepted", ...base, deployments };
  // As for a push, `accepted` means deployments were queued; the run itself was recorded either way.
  const incidents = outcome.incidents.length + outcome.resolved.length;
  const reason =
    `Run ${run.runId} (${run.status}${run.conclusion ? `/${run.conclusion}` : ""}) recorded for ` +
    `${outcome.applied.length} of ${outcome.owners.length} user(s)` +
    (incidents > 0 ? `; ${incidents} incident(s) updated` : "") +
    "; nothing to deploy";
  return { status: "ignored", ...base, deployments, reason };
}

async function deployPush(
  deps: Deps,
  claim: DeliveryItem,
  plan: Extract<Plan, { kind: "push" }>,
  scope: DeliveryScope,
  ip: string | null,
  trigger: "push" | "ci-success" = "push",
): Promise<string[]> {
  const queued = { ...claim.queued };
  const deployments: string[] = [];
  const repo = { id: plan.repoId, fullName: plan.repo };
  for (const app of await appsDeployingOn(deps, scope, repo, plan.branch, trigger)) {
    const done = queued[app.id];
    if (done) {
      deployments.push(done);
      continue;
    }
    if (trigger === "ci-success" && !(await workflowsPassed(deps, app, plan))) continue;
    let deployment: Awaited<ReturnType<typeof queueDeployment>>;
    try {
      deployment = await queueDeployment(
        deps,
        app,
        {
          trigger,
          ref: plan.branch,
          commitSha: plan.commitSha,
          commitMessage: plan.commitMessage,
          author: plan.author,
        },
        null,
        // The claim records each deployment in the same transaction: a crash can lose neither half. A green
        // CI run also claims its commit for the app: N workflows passing make one deployment, not N.
        (id) => [
          {
            update: {
              ...deliveryKey(claim.id),
              set: { queued: { ...queued, [app.id]: id } },
              condition: cond.eq("claimId", claim.claimId),
            },
          },
          ...(trigger === "ci-success" ? [ciCommitGuard(app.id, plan.commitSha)] : []),
        ],
      );
    } catch (err) {
      if (!(err instanceof ConditionFailedError)) throw err;
      if (err.failedIndexes.includes(CI_GUARD_INDEX)) continue; // this commit already deployed (or is queued) here
      // We stalled and a redelivery took the claim over: it finishes, and answers, the rest.
      throw inProgress(Date.now());
    }
    deployments.push(deployment.id);
    queued[app.id] = deployment.id;
    await recordAudit(deps, {
      userId: app.ownerId,
      action: "github.webhook",
      resourceType: "app",
      resourceId: app.id,
      details: {
        event: trigger === "push" ? "push" : "workflow_run",
        deliveryId: claim.id,
        repo: plan.repo,
        ref: plan.branch,
        commitSha: plan.commitSha,
        deploymentId: deployment.id,
      },
      ipAddress: ip,
    });
  }
  return deployments;
}
