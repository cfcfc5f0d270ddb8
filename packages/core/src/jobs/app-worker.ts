import { type AppItem, appKey } from "../apps/entity.ts";
import { failStrandedTransition, pendingTransition, runTransition, type Transition } from "../apps/lifecycle.ts";
import { type AppLockItem, acquireAppLock, appLockKey, type LockWork, lapsed, releaseAppLock } from "../apps/lock.ts";
import { type DeploymentItem, deploymentKey, FINISHED } from "../deployments/entity.ts";
import { appsQueuedBefore, oldestQueued } from "../deployments/queued.ts";
import { failStranded, prepareRun, runDeployment } from "../deployments/worker.ts";
import { ConditionFailedError } from "../errors.ts";
import { newToken } from "../ids.ts";
import type { Deps, Job } from "../ports.ts";
import { cond } from "../store/store.ts";

/**
 * Everything that runs commands in an app's directory — deploys, starts and
 * stops — goes through here, one at a time per app (DESIGN.md § Deploy flow).
 * Every job is only a wake-up for its app: the worker looks at what the app
 * needs next (a start or stop in progress first, then the oldest queued
 * deployment), takes the app's lock, runs it, releases the lock in `finally`
 * and queues a wake-up for whatever is next.
 *
 * Each acquisition arms a watchdog: a delayed `app-wake` naming the holder. It
 * re-arms while the holder renews its lease; once the lease lapses (the worker
 * died: a crashed Lambda, a killed process) it takes the lock over, ends the
 * stranded work as failed, and goes on. So no app waits on a dead worker for
 * longer than one lease, on either runtime.
 */

type Work =
  | { kind: "deploy"; dep: DeploymentItem; app: AppItem | undefined }
  | { kind: "transition"; app: AppItem; transition: Transition };

/** Enough rounds to skip work cancelled under us, without looping on a fault. */
const MAX_ROUNDS = 5;

/** `first`: the app's next work, already being read (a deploy job reads it alongside its deployment). */
export async function wakeApp(
  deps: Deps,
  ownerId: string,
  appId: string,
  first?: Promise<Work | undefined>,
): Promise<void> {
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const work = await ((round === 0 && first) || nextWork(deps, ownerId, appId));
    if (!work) return clearLapsedLock(deps, appId); // nothing waits, but a dead holder's work must still end
    const lockWork: LockWork = work.kind === "deploy" ? { kind: "deploy", deploymentId: work.dep.id } : work.transition;
    // A deploy reads its server and env while the lock is taken, and leaves the queue in the lock's own write.
    const ahead = work.kind === "deploy" ? prepareRun(deps, work.dep, work.app) : undefined;
    const got = await acquireAppLock(deps, { ownerId, appId }, lockWork, newToken(), ahead?.joined).catch(
      (err: unknown) => {
        if (err instanceof ConditionFailedError) return undefined; // the deployment left the queue meanwhile
        throw err;
      },
    );
    if (!got) continue;
    if ("held" in got) return; // its holder wakes the app when done; its watchdog covers its death
    const { lock, takenOver } = got;
    let ran = false;
    // Written while the work starts: dying in between leaves the job's own redelivery (SQS) or the restart (embedded).
    const armed = armWatchdog(deps, lock, deps.config.deploy.leaseMs).catch((err: unknown) =>
      deps.logger.warn("could not arm the app lock's watchdog", { appId, error: err }),
    );
    try {
      if (takenOver) {
        deps.logger.warn("took over an app lock whose holder stopped renewing it", { appId, work: takenOver.work });
        await endStranded(deps, takenOver);
        continue; // what comes next may have changed (a superseded queue): look again
      }
      ran =
        work.kind === "deploy"
          ? await runDeployment(deps, work.dep, lock, { ...ahead, running: got.joined ? ahead?.running : undefined })
          : await runTransition(deps, work.app, lock);
    } finally {
      await armed;
      await releaseAppLock(deps, lock);
    }
    if (!ran) continue;
    // The next piece of work gets a job of its own (on AWS, a fresh Lambda with its full time budget).
    await deps.queue.send({ type: "app-wake", ownerId, appId });
    return;
  }
}

/** `known`: a deployment of the app being read meanwhile (used, not read again, when it is the oldest queued). */
async function nextWork(
  deps: Deps,
  ownerId: string,
  appId: string,
  known?: Parameters<typeof oldestQueued>[2],
): Promise<Work | undefined> {
  const [app, dep] = await Promise.all([
    deps.store.get<AppItem>(appKey(ownerId, appId), { consistent: true }),
    oldestQueued(deps, appId, known), // also when the app is gone: its deployments still end, failed
  ]);
  const transition = app && pendingTransition(app);
  if (app && transition) return { kind: "transition", app, transition };
  return dep && { kind: "deploy", dep, app };
}

async function clearLapsedLock(deps: Deps, appId: string): Promise<void> {
  const lock = await deps.store.get<AppLockItem>(appLockKey(appId), { consistent: true });
  if (!lock || !lapsed(deps, lock)) return;
  try {
    await deps.store.delete(appLockKey(appId), { condition: cond.eq("holder", lock.holder) });
  } catch (err) {
    if (err instanceof ConditionFailedError) return; // another worker took it meanwhile
    throw err;
  }
  await endStranded(deps, lock);
}

async function endStranded(deps: Deps, stranded: AppLockItem): Promise<void> {
  if (stranded.work.kind === "deploy") return failStranded(deps, stranded.work.deploymentId);
  const app = await deps.store.get<AppItem>(appKey(stranded.ownerId, stranded.appId), { consistent: true });
  if (app) await failStrandedTransition(deps, app, stranded.work);
}

/** Delivers `app-wake {holder}` just after the lease it would find lapsed. */
async function armWatchdog(deps: Deps, lock: AppLockItem, inMs: number): Promise<void> {
  await deps.queue.send(
    { type: "app-wake", ownerId: lock.ownerId, appId: lock.appId, holder: lock.holder },
    { delaySeconds: Math.min(900, Math.ceil(inMs / 1000) + 1) },
  );
}

/** `app-wake`: a plain wake-up, or a watchdog for one holder of the app's lock. */
export async function appWakeJob(job: Extract<Job, { type: "app-wake" }>, deps: Deps): Promise<void> {
  if (job.holder) {
    const lock = await deps.store.get<AppLockItem>(appLockKey(job.appId), { consistent: true });
    if (lock && !lapsed(deps, lock)) {
      // Alive: watch on while it is the holder this watchdog was armed for; another holder has its own.
      if (lock.holder === job.holder) await armWatchdog(deps, lock, lock.leaseUntil - Date.now());
      return;
    }
  }
  await wakeApp(deps, job.ownerId, job.appId);
}

/**
 * `deploy {deploymentId}`: a wake-up for that deployment's app, unless it
 * already ended. A job that names its app reads the app's next work alongside the deployment.
 */
export async function deployJob(job: Extract<Job, { type: "deploy" }>, deps: Deps): Promise<void> {
  const read = deps.store.get<DeploymentItem>(deploymentKey(job.deploymentId), { consistent: true });
  const ahead =
    job.ownerId && job.appId ? nextWork(deps, job.ownerId, job.appId, { id: job.deploymentId, read }) : undefined;
  ahead?.catch(() => undefined); // handled from now on: awaited below only when it is used
  const dep = await read;
  const stranded = dep?.status === "running" && (dep.leaseUntil ?? 0) < Date.now();
  const useAhead = dep && !FINISHED.includes(dep.status) && !stranded && job.appId === dep.appId;
  if (!dep || FINISHED.includes(dep.status)) return;
  if (stranded) {
    // Running with a lapsed lease, yet not the lock's work (its lock was released after a failed final write).
    const lock = await deps.store.get<AppLockItem>(appLockKey(dep.appId), { consistent: true });
    if (!(lock?.work.kind === "deploy" && lock.work.deploymentId === dep.id)) await failStranded(deps, dep.id);
  }
  await wakeApp(deps, dep.ownerId, dep.appId, useAhead ? ahead : undefined);
}

/** `app-start` / `app-stop`: a wake-up for the app (what runs is read from the app itself). */
export const appJob = (job: Extract<Job, { type: "app-start" | "app-stop" }>, deps: Deps) =>
  wakeApp(deps, job.ownerId, job.appId);

/**
 * The backstop for a deployment whose job was never sent (the process died
 * between the write and the send): wakes every app with a deployment queued
 * longer than `olderThanMs`. Run at each embedded start and with the periodic
 * sweep on both runtimes; a wake for a busy app does nothing.
 */
export async function wakeStaleQueues(deps: Deps, olderThanMs: number): Promise<number> {
  const apps = await appsQueuedBefore(deps, Date.now() - olderThanMs);
  for (const { ownerId, appId } of apps) await deps.queue.send({ type: "app-wake", ownerId, appId });
  if (apps.length > 0) deps.logger.info("woke apps with waiting deployments", { apps: apps.length });
  return apps.length;
}
