import { type AppItem, appKey, commandsOf } from "../apps/entity.ts";
import { readEnv } from "../apps/env.ts";
import { runAppCommand } from "../apps/remote.ts";
import { recordAudit } from "../audit/service.ts";
import { ConditionFailedError } from "../errors.ts";
import type { Deps } from "../ports.ts";
import { publish } from "../realtime/publish.ts";
import { type ServerItem, serverKey } from "../servers/entity.ts";
import { SshError } from "../servers/ssh.ts";
import { cond, queryAll } from "../store/store.ts";
import { recordDeployUsage } from "../usage/service.ts";
import {
  appDeploymentsPk,
  type DeploymentItem,
  type DeploymentStatus,
  deployLockKey,
  deploymentKey,
  FINISHED,
  toDeployment,
} from "./entity.ts";
import { LogWriter, masker } from "./log-writer.ts";

type Outcome = {
  status: Exclude<DeploymentStatus, "queued" | "running">;
  exitCode: number | null;
  error: string | null;
};

/**
 * The deploy job (SQS message or local queue job `{deploymentId}`): a wake-up
 * for that deployment's app. Idempotent: a finished deployment, or one running
 * under a live lease elsewhere, is left alone. One deployment runs per app (a
 * lock item with a lease). When the app is idle the oldest queued deployment
 * runs, so racing pushes run in order; when one finishes, the queued ones
 * behind it but the newest are superseded, and the newest runs next.
 */
export async function runDeploymentJob(job: { deploymentId: string }, deps: Deps): Promise<void> {
  const dep = await deps.store.get<DeploymentItem>(deploymentKey(job.deploymentId));
  if (!dep || FINISHED.includes(dep.status)) return;
  if (dep.status === "running") {
    if (dep.leaseUntil && dep.leaseUntil > Date.now()) return; // alive in another worker
    // Its worker died mid-run. Deploy commands need not be idempotent, so it is failed, not re-run.
    await finish(deps, dep, {
      status: "failed",
      exitCode: null,
      error: "The deploy worker stopped mid-run (its lease expired); the deployment was not retried",
    });
    return;
  }
  const leaseMs = deps.config.deploy.leaseMs;
  for (let attempt = 0; attempt < 10; attempt++) {
    const next = await nextQueued(deps, dep.appId, "oldest");
    if (!next) return;
    if (!(await acquireLock(deps, next, leaseMs))) return; // the running one wakes the next when it finishes
    let running: DeploymentItem;
    try {
      running = await deps.store.update<DeploymentItem>(deploymentKey(next.id), {
        set: { status: "running", startedAt: Date.now(), leaseUntil: Date.now() + leaseMs },
        condition: cond.eq("status", "queued"),
      });
    } catch (err) {
      await releaseLock(deps, next);
      if (err instanceof ConditionFailedError) continue; // cancelled meanwhile: the next one in line
      throw err;
    }
    await announce(deps, running);
    const outcome = await execute(deps, running, leaseMs);
    await finish(deps, running, outcome);
    return;
  }
}

async function execute(deps: Deps, dep: DeploymentItem, leaseMs: number): Promise<Outcome> {
  const app = await deps.store.get<AppItem>(appKey(dep.ownerId, dep.appId));
  if (!app) return { status: "failed", exitCode: null, error: "The app no longer exists" };
  const server = await deps.store.get<ServerItem>(serverKey(dep.ownerId, app.serverId));
  if (!server) return { status: "failed", exitCode: null, error: "The app's server no longer exists" };
  const env = await readEnv(deps, app.ownerId, app.id);
  const log = new LogWriter(deps, dep.id, masker(Object.values(env)), deps.config.deploy.logMaxLines, dep.logLines);
  const abort = new AbortController();
  let cancelled = false;

  // Heartbeat: renew the lease (deployment and lock), and notice a cancel request.
  const heartbeat = setInterval(
    async () => {
      try {
        const until = Date.now() + leaseMs;
        const item = await deps.store.update<DeploymentItem>(deploymentKey(dep.id), {
          set: { leaseUntil: until },
          condition: cond.eq("status", "running"),
        });
        await deps.store.update(deployLockKey(dep.appId), {
          set: { leaseUntil: until },
          condition: cond.eq("holder", dep.id),
        });
        if (item.cancelRequested && !cancelled) {
          cancelled = true;
          log.write("system", "Cancel requested: stopping the command");
          abort.abort();
        }
      } catch (err) {
        deps.logger.warn("deployment heartbeat failed", { deploymentId: dep.id, error: err });
      }
    },
    Math.max(500, Math.floor(leaseMs / 4)),
  );

  const started = Date.now();
  try {
    log.write("system", `Connecting to ${server.sshUser}@${server.address}:${server.sshPort}`);
    log.write("system", `Writing .env (${Object.keys(env).length} variables) in ${app.cdPath}`);
    const command = commandsOf(app).deploy;
    log.write("system", `Running: ${command}`);
    const result = await runAppCommand(deps, app, server, command, {
      env,
      extraEnv: {
        HOIST_DEPLOYMENT_ID: dep.id,
        HOIST_COMMIT_SHA: dep.commitSha ?? "",
        HOIST_BRANCH: dep.ref ?? "",
      },
      timeoutMs: deps.config.deploy.timeoutMs,
      signal: abort.signal,
      onLine: (stream, line) => log.write(stream, line),
    });
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    if (result.exitCode === 0) {
      log.write("system", `Done: exit code 0 in ${seconds} s`);
      return { status: "succeeded", exitCode: 0, error: null };
    }
    const why =
      result.exitCode === null ? `was killed (${result.signal ?? "signal"})` : `exited with code ${result.exitCode}`;
    log.write("system", `Failed: the deploy command ${why} after ${seconds} s`);
    return { status: "failed", exitCode: result.exitCode, error: `The deploy command ${why}` };
  } catch (err) {
    if (!(err instanceof SshError)) throw err;
    if (err.kind === "aborted" && cancelled) {
      log.write("system", "Cancelled");
      return { status: "cancelled", exitCode: null, error: "Cancelled while running" };
    }
    log.write("system", `Failed: ${err.message}`);
    return { status: "failed", exitCode: null, error: err.message };
  } finally {
    clearInterval(heartbeat);
    await log.flush();
  }
}

async function finish(deps: Deps, dep: DeploymentItem, outcome: Outcome): Promise<void> {
  const finishedAt = Date.now();
  const durationMs = dep.startedAt ? finishedAt - dep.startedAt : null;
  let done: DeploymentItem;
  try {
    done = await deps.store.update<DeploymentItem>(deploymentKey(dep.id), {
      set: { ...outcome, finishedAt, durationMs, leaseUntil: null },
      condition: cond.eq("status", "running"),
    });
  } catch (err) {
    ignoreConditionFailure(err);
    return;
  }
  await recordDeployUsage(deps, dep.ownerId, finishedAt, durationMs ?? 0);
  await recordAudit(deps, {
    userId: dep.ownerId,
    action: "deployment.finish",
    resourceType: "deployment",
    resourceId: dep.id,
    details: { appId: dep.appId, status: outcome.status, exitCode: outcome.exitCode, durationMs },
  });
  await announce(deps, done);
  await supersedeAllButNewest(deps, dep.appId);
  await releaseLock(deps, dep);
  const next = await nextQueued(deps, dep.appId, "newest");
  if (next) await deps.queue.send({ type: "deploy", deploymentId: next.id });
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
  const [newest, ...older] = await queryAll<DeploymentItem>(deps.store, {
    index: "gsi1",
    pk: appDeploymentsPk(appId),
    reverse: true,
    filter: cond.eq("status", "queued"),
  });
  for (const old of older) {
    await deps.store
      .update(deploymentKey(old.id), {
        set: { status: "cancelled", finishedAt: Date.now(), error: `Superseded by ${newest?.id}` },
        condition: cond.eq("status", "queued"),
      })
      .then(() => announce(deps, { ...old, status: "cancelled" }))
      .catch(ignoreConditionFailure);
  }
}

async function nextQueued(deps: Deps, appId: string, which: "oldest" | "newest"): Promise<DeploymentItem | undefined> {
  const page = await deps.store.query<DeploymentItem>({
    index: "gsi1",
    pk: appDeploymentsPk(appId),
    reverse: which === "newest",
    limit: 1,
    filter: cond.eq("status", "queued"),
  });
  return page.items[0];
}

async function acquireLock(deps: Deps, dep: DeploymentItem, leaseMs: number): Promise<boolean> {
  try {
    await deps.store.put(
      { ...deployLockKey(dep.appId), entity: "deploy-lock", holder: dep.id, leaseUntil: Date.now() + leaseMs },
      // Not re-entrant: two workers woken for the same deployment must not both get it.
      { condition: cond.or(cond.notExists(), cond.compare("leaseUntil", "<", Date.now())) },
    );
    return true;
  } catch (err) {
    if (err instanceof ConditionFailedError) return false;
    throw err;
  }
}

async function releaseLock(deps: Deps, dep: DeploymentItem): Promise<void> {
  await deps.store
    .delete(deployLockKey(dep.appId), { condition: cond.eq("holder", dep.id) })
    .catch(ignoreConditionFailure);
}

function ignoreConditionFailure(err: unknown): void {
  if (!(err instanceof ConditionFailedError)) throw err;
}
