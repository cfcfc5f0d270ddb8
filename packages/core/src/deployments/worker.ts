import { type AppItem, appKey, commandsOf } from "../apps/entity.ts";
import { readEnv } from "../apps/env.ts";
import { markDeployed } from "../apps/lifecycle.ts";
import { type AppLockItem, withHeartbeat } from "../apps/lock.ts";
import { masker } from "../apps/mask.ts";
import { readRemoteHead, runAppCommand } from "../apps/remote.ts";
import { recordAudit } from "../audit/service.ts";
import { ConditionFailedError, errorMessage, ignoreConditionFailed } from "../errors.ts";
import type { Deps } from "../ports.ts";
import { settleReplays } from "../realtime/log-fanout.ts";
import { publish } from "../realtime/publish.ts";
import { type ServerItem, serverKey } from "../servers/entity.ts";
import { SshError } from "../servers/ssh-error.ts";
import { cond } from "../store/store.ts";
import { monthOf } from "../usage/entity.ts";
import { deployUsageOp } from "../usage/service.ts";
import { warnOnLimits } from "../usage/warnings.ts";
import { type DeploymentItem, type DeploymentStatus, deploymentKey, toDeployment } from "./entity.ts";
import { LogWriter } from "./log-writer.ts";
import { leaveQueue, leaveQueueOps, queuedDeployments } from "./queued.ts";

type Outcome = {
  status: Exclude<DeploymentStatus, "queued" | "running">;
  exitCode: number | null;
  error: string | null;
  /** The commit the target ended on, when the deployment did not name one. */
  commitSha?: string | null;
};

/** What a run reads and writes besides the deployment, prepared while its app's lock is taken (prepareRun). */
export interface Ahead {
  /** The app as read with the deployment (null: gone); read at the start of the run when absent. */
  app?: AppItem | null;
  /** The app's server and env, being read. */
  target?: Promise<[ServerItem | undefined, Record<string, string>]>;
  /** The deployment already moved to `running` (in the lock's own transaction). */
  running?: DeploymentItem;
}

/**
 * Prepares a run of `dep` while the lock is being taken: the writes that move
 * it to `running` (`joined`: for the lock's own transaction), and the reads of
 * its server and env, started now (left unread when the run does not happen).
 */
export function prepareRun(deps: Deps, dep: DeploymentItem, app: AppItem | undefined) {
  const now = Date.now();
  const set = { status: "running" as const, startedAt: now, leaseUntil: now + deps.config.deploy.leaseMs };
  const target = app ? readTarget(deps, app) : undefined;
  target?.catch(() => undefined); // handled from now on: awaited by the run, or dropped
  return {
    joined: leaveQueueOps(dep, set),
    running: { ...dep, ...set },
    app: app ?? null,
    target,
  };
}

const readTarget = (deps: Deps, app: AppItem) =>
  Promise.all([deps.store.get<ServerItem>(serverKey(app.ownerId, app.serverId)), readEnv(deps, app.ownerId, app.id)]);

/**
 * Runs one queued deployment while its app's lock is held (the app worker took
 * it): `queued → running` (unless `ahead.running` says it was done with the
 * lock), the deploy command over SSH with a heartbeat on the deployment's
 * lease and the lock, then a terminal status whatever happens. Answers false
 * when the deployment was no longer queued (cancelled meanwhile).
 */
export async function runDeployment(
  deps: Deps,
  dep: DeploymentItem,
  lock: AppLockItem,
  ahead: Ahead = {},
): Promise<boolean> {
  const leaseMs = deps.config.deploy.leaseMs;
  let running: DeploymentItem;
  try {
    running =
      ahead.running ??
      (await leaveQueue(deps, dep, {
        status: "running",
        startedAt: Date.now(),
        leaseUntil: Date.now() + leaseMs,
      }));
  } catch (err) {
    if (err instanceof ConditionFailedError) return false;
    throw err;
  }
  // Said while the command starts, not before: the final status still follows every log line (finish).
  const announced = announce(deps, running);
  let outcome: Outcome;
  try {
    outcome = await execute(deps, running, lock, ahead);
  } catch (err) {
    // Not the command failing but Hoist (KMS, DynamoDB, a bug): the deployment still ends, and says so.
    deps.logger.error("deploy failed inside Hoist", { deploymentId: dep.id, error: err });
    outcome = { status: "failed", exitCode: null, error: `Hoist could not run the deploy: ${errorMessage(err)}` };
  }
  await announced;
  await finish(deps, running, outcome);
  return true;
}

async function execute(deps: Deps, dep: DeploymentItem, lock: AppLockItem, ahead: Ahead): Promise<Outcome> {
  const app = ahead.app !== undefined ? ahead.app : await deps.store.get<AppItem>(appKey(dep.ownerId, dep.appId));
  if (!app) return { status: "failed", exitCode: null, error: "The app no longer exists" };
  const [server, env] = await (ahead.target ?? readTarget(deps, app));
  if (!server) return { status: "failed", exitCode: null, error: "The app's server no longer exists" };
  if (!server.credentials)
    return {
      status: "failed",
      exitCode: null,
      error: "The server has no SSH credentials; add a privateKey or password to it, then redeploy",
    };
  const log = new LogWriter(deps, dep.id, masker(Object.values(env)));
  const abort = new AbortController();
  let cancelled = false;
  let lost = false;

  // At each heartbeat: renew the deployment's lease (the lock's is renewed alongside) and notice a cancel.
  const tick = async () => {
    const item = await deps.store
      .update<DeploymentItem>(deploymentKey(dep.id), {
        set: { leaseUntil: Date.now() + deps.config.deploy.leaseMs },
        condition: cond.eq("status", "running"),
      })
      .catch(ignoreConditionFailed); // undefined: ended elsewhere (taken over after a stall), so stop the command
    if (!item && !lost) {
      lost = true;
      abort.abort();
    } else if (item?.cancelRequested && !cancelled) {
      cancelled = true;
      log.write("system", "Cancel requested: stopping the command");
      abort.abort();
    }
  };

  const started = Date.now();
  try {
    return await withHeartbeat(
      deps,
      lock,
      async (): Promise<Outcome> => {
        log.write("system", `Connecting to ${server.sshUser}@${server.address}:${server.sshPort}`);
        log.write("system", `Writing .env (${Object.keys(env).length} variables) in ${app.cdPath}`);
        const command = commandsOf(app).deploy;
        log.write("system", `Running: ${command}`);
        const result = await runAppCommand(deps, app, server, command, {
          env,
          extraEnv: {
            HOIST_DEPLOYMENT_ID: dep.id,
            HOIST_COMMIT_SHA: dep.commitSha ?? "",
            HOIST_BRANCH: dep.ref ?? app.repository?.branch ?? "",
          },
          timeoutMs: deps.config.deploy.timeoutMs,
          signal: abort.signal,
          onLine: (stream, line) => log.write(stream, line),
          flow: log,
        });
        const seconds = ((Date.now() - started) / 1000).toFixed(1);
        if (result.exitCode === 0) {
          // A deploy of a branch records the commit it ended on, so a redeploy runs exactly that one.
          const commitSha = dep.commitSha ? undefined : await readRemoteHead(deps, app, server);
          if (commitSha) log.write("system", `Deployed commit ${commitSha}`);
          log.write("system", `Done: exit code 0 in ${seconds} s`);
          return { status: "succeeded", exitCode: 0, error: null, ...(commitSha ? { commitSha } : {}) };
        }
        const why =
          result.exitCode === null
            ? `was killed (${result.signal ?? "signal"})`
            : `exited with code ${result.exitCode}`;
        log.write("system", `Failed: the deploy command ${why} after ${seconds} s`);
        return { status: "failed", exitCode: result.exitCode, error: `The deploy command ${why}` };
      },
      tick,
    );
  } catch (err) {
    if (!(err instanceof SshError)) throw err;
    if (err.kind === "aborted" && cancelled) {
      log.write("system", "Cancelled");
      return { status: "cancelled", exitCode: null, error: "Cancelled while running" };
    }
    log.write("system", `Failed: ${err.message}`);
    return { status: "failed", exitCode: null, error: err.message };
  } finally {
    await log.close();
  }
}

/**
 * Records the terminal status and, in the same transaction, the deployment's
 * use (so it is counted exactly once: a redelivery finds it ended and adds
 * nothing), retried: it is the one write that must land. Then the follow-ups,
 * each on its own so none can block the others: limit warnings, audit, the
 * status message, superseding, and the app's lifecycle.
 */
export async function finish(deps: Deps, dep: DeploymentItem, outcome: Outcome): Promise<void> {
  const finishedAt = Date.now();
  const durationMs = dep.startedAt ? finishedAt - dep.startedAt : null;
  const set = { ...outcome, finishedAt, durationMs, leaseUntil: null };
  let done: DeploymentItem | undefined;
  for (let attempt = 1; !done; attempt++) {
    try {
      await deps.store.transact([
        { update: { ...deploymentKey(dep.id), set, condition: cond.eq("status", "running") } },
        deployUsageOp(dep.ownerId, finishedAt, durationMs ?? 0),
      ]);
      done = { ...dep, ...(Object.fromEntries(Object.entries(set).filter(([, v]) => v !== undefined)) as typeof set) };
    } catch (err) {
      if (err instanceof ConditionFailedError) return; // already ended (taken over, or a redelivery)
      if (attempt >= 4) throw err; // the job is retried: its redelivery fails the deployment as stranded
      await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
    }
  }
  const ended = done;
  const steps: [string, () => Promise<unknown>][] = [
    ["usage warnings", () => warnOnLimits(deps, dep.ownerId, [monthOf(finishedAt)])],
    [
      "audit",
      () =>
        recordAudit(deps, {
          userId: dep.ownerId,
          action: "deployment.finish",
          resourceType: "deployment",
          resourceId: dep.id,
          details: { appId: dep.appId, status: outcome.status, exitCode: outcome.exitCode, durationMs },
        }),
    ],
    ["announce", () => announce(deps, ended)],
    ["log replays", () => settleReplays(deps, dep.id)],
    ["supersede", () => supersedeAllButNewest(deps, dep.appId)],
    [
      "lifecycle",
      async () => (outcome.status === "succeeded" ? markDeployed(deps, dep.ownerId, dep.appId) : undefined),
    ],
  ];
  for (const [step, run] of steps) {
    await run().catch((err: unknown) =>
      deps.logger.error(`deployment ${step} step failed after it ended`, { deploymentId: dep.id, error: err }),
    );
  }
}

/** A deployment whose worker died mid-run: failed, never re-run (deploy commands need not be idempotent). */
export async function failStranded(deps: Deps, deploymentId: string): Promise<void> {
  const dep = await deps.store.get<DeploymentItem>(deploymentKey(deploymentId), { consistent: true });
  if (dep?.status !== "running") return;
  await finish(deps, dep, {
    status: "failed",
    exitCode: null,
    error:
      "The deploy worker stopped mid-run (its lease lapsed); the deployment was not retried. Redeploy it to run it again",
  });
}

/** Status changes go to the deployment's and the app's channel. */
async function announce(deps: Deps, dep: DeploymentItem): Promise<void> {
  const message = {
    type: "status",
    resource: "deployment",
    id: dep.id,
    status: dep.status,
    deployment: toDeployment(dep),
  };
  await Promise.all([
    publish(deps, `deployment:${dep.id}`, [message]),
    publish(deps, `app:${dep.appId}`, [message]),
  ]).catch((err: unknown) => deps.logger.warn("status publish failed", { deploymentId: dep.id, error: err }));
}

/** Of the deployments that queued up behind a run, only the newest is worth running: the others are cancelled. */
async function supersedeAllButNewest(deps: Deps, appId: string): Promise<void> {
  const queued = await queuedDeployments(deps, appId);
  const newest = queued.at(-1);
  for (const marker of queued.slice(0, -1)) {
    const old = await deps.store.get<DeploymentItem>(deploymentKey(marker.deploymentId), { consistent: true });
    if (!old) continue;
    await leaveQueue(deps, old, {
      status: "cancelled",
      finishedAt: Date.now(),
      error: `Superseded by ${newest?.deploymentId}`,
    })
      .then((cancelled) => announce(deps, cancelled))
      .catch(ignoreConditionFailed);
  }
}
