import { randomBytes } from "node:crypto";
import type { Actor } from "../actor.ts";
import { auditAction, recordAudit } from "../audit/service.ts";
import {
  ConditionFailedError,
  ConflictError,
  errorMessage,
  ignoreConditionFailed,
  NotFoundError,
  PaymentRequiredError,
  ServiceUnavailableError,
} from "../errors.ts";
import type { CountsItem } from "../plans/entity.ts";
import type { Deps, Job, ScheduledEvent } from "../ports.ts";
import { publish } from "../realtime/publish.ts";
import { type ServerItem, serverKey } from "../servers/entity.ts";
import { SshError } from "../servers/ssh-error.ts";
import { type Condition, cond, type TransactOp } from "../store/store.ts";
import { monthOf, type UsageItem, usageKey, userCountsKey } from "../usage/entity.ts";
import { clock, meteringStart, runEnd, takeRunningSlot } from "../usage/running.ts";
import { planOf } from "../usage/service.ts";
import { warnOnLimits } from "../usage/warnings.ts";
import { type AppItem, type AppStatus, appKey, commandsOf } from "./entity.ts";
import { readEnv } from "./env.ts";
import { type AppLockItem, type LockWork, withHeartbeat } from "./lock.ts";
import { masker } from "./mask.ts";
import { runAppCommand } from "./remote.ts";

/** One auto-stop schedule per app; starting again moves it, stopping deletes it. */
export const autoStopScheduleName = (appId: string) => `autostop-${appId}`;

const MINUTE = 60_000;

export interface LifecycleAnswer {
  success: boolean;
  appId: string;
  status: AppStatus;
  startedAt: number | null;
  stopsAt: number | null;
  message: string;
}

/** Status changes go to `app:<id>` subscribers (best effort: a failed post never fails the transition). */
async function announce(
  deps: Deps,
  app: AppItem,
  status: AppStatus,
  extra: Record<string, unknown> = {},
): Promise<void> {
  await publish(deps, `app:${app.id}`, [
    { type: "status", resource: "app", id: app.id, status, startedAt: app.startedAt, stopsAt: app.stopsAt, ...extra },
  ]).catch((err: unknown) => deps.logger.warn("app status publish failed", { appId: app.id, error: err }));
}

const answer = (app: AppItem, message: string): LifecycleAnswer => ({
  success: true,
  appId: app.id,
  status: app.status,
  startedAt: app.startedAt,
  stopsAt: app.stopsAt,
  message,
});

/**
 * `POST /api/apps/:id/start`: moves `stopped`/`error` → `starting` with a new
 * run id (a conditional write, so two starts cannot both win) and queues the
 * SSH work; the worker moves it on to `running` or `error`. In the same
 * transaction the run takes one of the owner's `runningApps` (402 at the
 * plan's limit, so N+1 racing starts leave exactly N) and the month's
 * `appRunningMinutes` must be under the plan's `appMinutes` (402).
 */
export async function startApp(
  deps: Deps,
  actor: Actor,
  appId: string,
  timeoutMinutes?: number,
): Promise<LifecycleAnswer> {
  const runId = randomBytes(9).toString("base64url");
  const plan = await planOf(deps, actor.userId);
  const month = monthOf(clock(deps));
  const { runningApps, appMinutes } = plan.limits;
  try {
    await deps.store.transact([
      {
        update: {
          ...appKey(actor.userId, appId),
          set: {
            status: "starting",
            runId,
            countedRun: runId,
            lastError: null,
            startedAt: null,
            stopsAt: null,
            runTimeout: timeoutMinutes ?? null,
            updatedAt: Date.now(),
          },
          condition: cond.and(cond.exists(), cond.in("status", ["stopped", "error"])),
        },
      },
      takeRunningSlot(actor.userId, runningApps),
      ...(appMinutes === undefined
        ? []
        : [
            {
              check: usageKey(actor.userId, month),
              condition: cond.or(
                cond.attrNotExists("appRunningMinutes"),
                cond.compare("appRunningMinutes", "<", appMinutes),
              ),
            },
          ]),
    ]);
  } catch (err) {
    if (err instanceof ConditionFailedError && !err.failedIndexes.includes(0)) {
      if (err.failedIndexes.includes(1) && runningApps !== undefined) {
        const counts = await deps.store.get<CountsItem>(userCountsKey(actor.userId));
        throw new PaymentRequiredError("runningApps", counts?.runningApps ?? runningApps, runningApps, plan.name);
      }
      if (err.failedIndexes.includes(2) && appMinutes !== undefined) {
        const usage = await deps.store.get<UsageItem>(usageKey(actor.userId, month));
        throw new PaymentRequiredError("appMinutes", usage?.appRunningMinutes ?? appMinutes, appMinutes, plan.name);
      }
    }
    throw await transitionError(deps, actor.userId, appId, err, "start");
  }
  const app = await deps.store.get<AppItem>(appKey(actor.userId, appId), { consistent: true });
  if (!app) throw new NotFoundError("App");
  await enqueueOrFail(deps, app, { type: "app-start", ownerId: actor.userId, appId, runId });
  await announce(deps, app, "starting");
  await auditAction(deps, actor, "app", "app.start", appId, { timeout: timeoutMinutes ?? app.autoStopTimeout });
  return answer(app, "Starting");
}

/** `POST /api/apps/:id/stop`: `running`/`error` → `stopping`, cancels the auto-stop, queues the SSH work. */
export async function stopApp(deps: Deps, actor: Actor, appId: string): Promise<LifecycleAnswer> {
  const app = await beginStop(deps, actor.userId, appId, ["running", "error"]);
  await deps.scheduler.cancel(autoStopScheduleName(appId));
  await enqueueOrFail(deps, app, { type: "app-stop", ownerId: actor.userId, appId, runId: app.runId ?? "none" });
  await announce(deps, app, "stopping");
  await auditAction(deps, actor, "app", "app.stop", appId, {});
  return answer(app, "Stopping");
}

/** `POST /api/apps/:id/extend`: moves the auto-stop `minutes` later (from now if it had none). */
export async function extendApp(deps: Deps, actor: Actor, appId: string, minutes: number): Promise<LifecycleAnswer> {
  const current = await deps.store.get<AppItem>(appKey(actor.userId, appId));
  if (!current) throw await transitionError(deps, actor.userId, appId, new ConditionFailedError(), "extend");
  const stopsAt = Math.max(current.stopsAt ?? Date.now(), Date.now()) + minutes * MINUTE;
  let app: AppItem;
  try {
    app = await deps.store.update<AppItem>(appKey(actor.userId, appId), {
      set: { stopsAt, updatedAt: Date.now() },
      condition: cond.and(cond.eq("status", "running"), cond.eq("runId", current.runId)),
    });
  } catch (err) {
    throw await transitionError(deps, actor.userId, appId, err, "extend");
  }
  await scheduleAutoStop(deps, app);
  await auditAction(deps, actor, "app", "app.extend", appId, { minutes, stopsAt });
  return answer(app, `Auto-stop moved to ${new Date(stopsAt).toISOString()}`);
}

/**
 * `running`/`error` → `stopping`. Leaving `running` ends the run: its last
 * minutes are booked and its `runningApps` slot released in the same
 * transaction (usage/running.ts), so the time an app is metered is the time it
 * is `running`, and the stop command's own time is not billed.
 */
async function beginStop(
  deps: Deps,
  ownerId: string,
  appId: string,
  from: AppStatus[],
  runId?: string,
): Promise<AppItem> {
  let before: AppItem | undefined;
  try {
    const ended = await endRun(deps, ownerId, appId, (app) => {
      if (!from.includes(app.status) || (runId && app.runId !== runId)) return undefined;
      before = app;
      return {
        set: { status: "stopping", updatedAt: Date.now() },
        condition: cond.and(cond.eq("status", app.status), cond.eq("runId", app.runId)),
        ops:
          app.status === "running"
            ? [
                {
                  update: {
                    ...serverKey(ownerId, app.serverId),
                    add: { runningAppsCount: -1 },
                    condition: cond.exists(),
                  },
                },
              ]
            : [],
      };
    });
    if (!ended || !before) throw new ConditionFailedError();
  } catch (err) {
    throw await transitionError(deps, ownerId, appId, err, "stop");
  }
  return { ...before, status: "stopping" };
}

interface RunEndingWrite {
  set: Record<string, unknown>;
  condition: Condition;
  ops: TransactOp[];
}

/**
 * A transition that ends the app's run, if it has one: `write` (decided on
 * the app as read; undefined: the transition does not apply) plus the run's
 * close-out, in one transaction conditional on the watermark read. A racing
 * close-out (the sweep) makes it read again and retry; it answers whether it
 * wrote. Limit warnings follow for the months the last minutes touched.
 */
async function endRun(
  deps: Deps,
  ownerId: string,
  appId: string,
  write: (app: AppItem) => RunEndingWrite | undefined,
): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    const app = await deps.store.get<AppItem>(appKey(ownerId, appId), { consistent: true });
    const w = app && write(app);
    if (!app || !w) return false;
    const end = runEnd(app, clock(deps));
    try {
      await deps.store.transact([
        {
          update: {
            ...appKey(ownerId, appId),
            set: w.set,
            remove: end.remove,
            condition: cond.and(w.condition, end.condition),
          },
        },
        ...w.ops,
        ...end.ops,
      ]);
    } catch (err) {
      if (err instanceof ConditionFailedError && err.failedIndexes.includes(0) && attempt < 4) continue;
      throw err;
    }
    if (end.months.length > 0) await warnOnLimits(deps, ownerId, end.months);
    return true;
  }
}

/**
 * Commits `ops`, which delete the app, together with the end of its run if it
 * has one (a forced delete of a running app: its last minutes booked, its
 * `runningApps` slot released), the delete conditional on the watermark read.
 * A racing close-out (the sweep) makes it read again and retry. `commit` runs
 * the transaction (default: as is; a caller may add its own counts).
 */
export async function deleteEndingRun(
  deps: Deps,
  ownerId: string,
  appId: string,
  ops: TransactOp[],
  commit: (all: TransactOp[]) => Promise<void> = (all) => deps.store.transact(all),
): Promise<void> {
  const key = appKey(ownerId, appId);
  for (let attempt = 0; ; attempt++) {
    const app = await deps.store.get<AppItem>(key, { consistent: true });
    const end = app ? runEnd(app, clock(deps)) : undefined;
    const withEnd = ops.map((op): TransactOp => {
      if (!end || !("delete" in op) || op.delete.pk !== key.pk || op.delete.sk !== key.sk) return op;
      return { delete: op.delete, condition: op.condition ? cond.and(op.condition, end.condition) : end.condition };
    });
    try {
      await commit([...withEnd, ...(end?.ops ?? [])]);
    } catch (err) {
      if (!(err instanceof ConditionFailedError) || !app || attempt >= 4) throw err;
      const now = await deps.store.get<AppItem>(key, { consistent: true });
      if (now && (now.meteredUntil !== app.meteredUntil || now.countedRun !== app.countedRun)) continue;
      throw err;
    }
    if (end && end.months.length > 0) await warnOnLimits(deps, ownerId, end.months);
    return;
  }
}

/** A transition whose job cannot be queued ends `error` at once, instead of waiting for a worker that never comes. */
async function enqueueOrFail(deps: Deps, app: AppItem, job: Extract<Job, { type: "app-start" | "app-stop" }>) {
  try {
    await deps.queue.send(job);
  } catch (err) {
    deps.logger.error("could not queue an app job", { appId: app.id, type: job.type, error: err });
    const verb = job.type === "app-start" ? "start" : "stop";
    await fail(deps, app, `Hoist could not queue the ${verb} (its job queue failed); try again`, null, []);
    throw new ServiceUnavailableError(`Could not queue the ${verb}; the app is now error. Try again`);
  }
}

async function transitionError(deps: Deps, ownerId: string, appId: string, err: unknown, verb: string): Promise<Error> {
  if (!(err instanceof ConditionFailedError)) return err as Error;
  const app = await deps.store.get<AppItem>(appKey(ownerId, appId));
  if (!app) return new NotFoundError("App");
  return new ConflictError(`Cannot ${verb} the app while it is ${app.status}`);
}

async function scheduleAutoStop(deps: Deps, app: AppItem): Promise<void> {
  if (!app.stopsAt || !app.runId) return;
  await deps.scheduler.schedule(autoStopScheduleName(app.id), new Date(app.stopsAt), {
    type: "auto-stop",
    ownerId: app.ownerId,
    appId: app.id,
    runId: app.runId,
  });
}

const tail = (lines: string[]) => lines.slice(-20);

async function serverOf(deps: Deps, app: AppItem): Promise<ServerItem | undefined> {
  return deps.store.get<ServerItem>(serverKey(app.ownerId, app.serverId));
}

/** Records a failed run as `error` with what failed, if it is still this run. */
async function fail(deps: Deps, app: AppItem, message: string, exitCode: number | null, output: string[]) {
  // A failed start ends its run (its `runningApps` slot is released); a failed stop's run ended when it began.
  await endRun(deps, app.ownerId, app.id, (current) =>
    current.runId === app.runId
      ? {
          set: {
            status: "error",
            lastError: { message, exitCode, output: tail(output), at: Date.now() },
            updatedAt: Date.now(),
          },
          condition: cond.eq("runId", app.runId),
          ops: [],
        }
      : undefined,
  ).catch(ignoreConditionFailed);
  await announce(deps, app, "error", { message });
  await recordAudit(deps, {
    userId: app.ownerId,
    action: "app.command_failed",
    resourceType: "app",
    resourceId: app.id,
    details: { message, exitCode },
  });
}

/** The transition in progress, as work for the app's lock, if the app is `starting` or `stopping`. */
export type Transition = Extract<LockWork, { kind: "start" | "stop" }>;

export function pendingTransition(app: AppItem): Transition | undefined {
  if (app.status === "starting" && app.runId) return { kind: "start", runId: app.runId };
  if (app.status === "stopping") return { kind: "stop", runId: app.runId ?? "none" };
  return undefined;
}

/**
 * Runs the start or stop command of the transition in progress, holding the
 * app's lock (renewed while it runs). Every way it can end leaves the app
 * `running`, `stopped` or `error` with the reason. False when the transition
 * was no longer in progress.
 */
export async function runTransition(deps: Deps, app: AppItem, lock: AppLockItem): Promise<boolean> {
  const work = pendingTransition(app);
  const held = lock.work;
  if (!work || held.kind !== work.kind || held.runId !== work.runId) return false;
  const verb = work.kind;
  try {
    const server = await serverOf(deps, app);
    if (!server) await fail(deps, app, "The app's server no longer exists", null, []);
    else if (!server.credentials)
      await fail(deps, app, "The server has no SSH credentials; add a privateKey or password to it", null, []);
    else {
      const command = verb === "start" ? commandsOf(app).start : commandsOf(app).stop;
      const env = await readEnv(deps, app.ownerId, app.id);
      const result = await withHeartbeat(deps, lock, () => runAppCommand(deps, app, server, command, { env }));
      if (result.exitCode !== 0) {
        const why =
          result.exitCode === null ? `killed by ${result.signal ?? "a signal"}` : `exited with ${result.exitCode}`;
        // The output is stored and shown (`lastError.output`): masked like deploy logs.
        const mask = masker(Object.values(env));
        await fail(
          deps,
          app,
          `The ${verb} command ${why}`,
          result.exitCode,
          [...result.stdoutTail, ...result.stderrTail].map(mask),
        );
      } else if (verb === "start") await markRunning(deps, app);
      else await markStopped(deps, app);
    }
  } catch (err) {
    if (err instanceof SshError) await fail(deps, app, err.message, null, []);
    else {
      deps.logger.error("app command failed inside Hoist", { appId: app.id, verb, error: err });
      await fail(deps, app, `Hoist could not run the ${verb} command: ${errorMessage(err)}`, null, []);
    }
  }
  return true;
}

/** A start or stop whose worker died mid-run (its lease lapsed): `error`, saying so. */
export async function failStrandedTransition(deps: Deps, app: AppItem, work: Transition): Promise<void> {
  const pending = pendingTransition(app);
  if (!pending || pending.kind !== work.kind || pending.runId !== work.runId) return;
  await fail(
    deps,
    app,
    `The worker running the ${work.kind} command stopped mid-run (its lease lapsed); ${work.kind} the app again`,
    null,
    [],
  );
}

/**
 * A deploy succeeded: the app is up. A stopped (or failed) app becomes a new
 * run: `running`, `startedAt` now, metered from now, auto-stop scheduled from
 * its `autoStopTimeout`. A running app keeps its run, and its auto-stop moves
 * no earlier than a full timeout from now. A start or stop in progress is left
 * to finish.
 */
export async function markDeployed(deps: Deps, ownerId: string, appId: string): Promise<void> {
  const app = await deps.store.get<AppItem>(appKey(ownerId, appId), { consistent: true });
  if (!app) return;
  const now = Date.now();
  const minutes = app.status === "running" ? (app.runTimeout ?? app.autoStopTimeout) : app.autoStopTimeout;
  const fromNow = minutes > 0 ? now + minutes * MINUTE : null;
  if (app.status === "running") {
    if (!fromNow || (app.stopsAt && app.stopsAt >= fromNow)) return;
    const moved = await deps.store
      .update<AppItem>(appKey(ownerId, appId), {
        set: { stopsAt: fromNow, updatedAt: now },
        condition: cond.and(cond.eq("status", "running"), cond.eq("runId", app.runId)),
      })
      .catch(ignoreConditionFailed);
    if (moved) await scheduleAutoStop(deps, moved);
    return;
  }
  if (app.status !== "stopped" && app.status !== "error") return;
  const runId = randomBytes(9).toString("base64url");
  // The deploy already made the app run: metered from now, and counted in `runningApps` even past the plan's
  // limit (the limit refuses starts; it cannot un-run what a deploy started).
  const metering = meteringStart(app, runId, clock(deps));
  try {
    await deps.store.transact([
      {
        update: {
          ...appKey(ownerId, appId),
          set: {
            status: "running",
            runId,
            countedRun: runId,
            ...metering.set,
            runTimeout: null,
            startedAt: now,
            stopsAt: fromNow,
            lastError: null,
            updatedAt: now,
          },
          condition: cond.and(cond.eq("status", app.status), cond.eq("runId", app.runId)),
        },
      },
      { update: { ...serverKey(ownerId, app.serverId), add: { runningAppsCount: 1 }, condition: cond.exists() } },
      takeRunningSlot(ownerId, undefined),
      ...metering.ops,
    ]);
  } catch (err) {
    ignoreConditionFailed(err);
    return;
  }
  const running: AppItem = { ...app, status: "running", runId, runTimeout: null, startedAt: now, stopsAt: fromNow };
  await scheduleAutoStop(deps, running);
  await announce(deps, running, "running", { reason: "deploy" });
}

async function markRunning(deps: Deps, app: AppItem) {
  const now = Date.now();
  const minutes = app.runTimeout ?? app.autoStopTimeout;
  const stopsAt = minutes > 0 ? now + minutes * MINUTE : null;
  const metering = meteringStart(app, app.runId ?? "", clock(deps));
  try {
    await deps.store.transact([
      {
        update: {
          ...appKey(app.ownerId, app.id),
          set: { status: "running", startedAt: now, stopsAt, updatedAt: now, ...metering.set },
          condition: cond.and(cond.eq("status", "starting"), cond.eq("runId", app.runId)),
        },
      },
      { update: { ...serverKey(app.ownerId, app.serverId), add: { runningAppsCount: 1 }, condition: cond.exists() } },
      ...metering.ops,
    ]);
  } catch (err) {
    if (err instanceof ConditionFailedError) return; // superseded meanwhile
    throw err;
  }
  const running: AppItem = { ...app, status: "running", startedAt: now, stopsAt };
  await scheduleAutoStop(deps, running);
  await announce(deps, running, "running");
}

async function markStopped(deps: Deps, app: AppItem) {
  const now = Date.now();
  try {
    await deps.store.update(appKey(app.ownerId, app.id), {
      set: { status: "stopped", startedAt: null, stopsAt: null, updatedAt: now },
      condition: cond.and(cond.eq("status", "stopping"), cond.eq("runId", app.runId)),
    });
  } catch (err) {
    if (err instanceof ConditionFailedError) return;
    throw err;
  }
  await announce(deps, { ...app, startedAt: null, stopsAt: null }, "stopped");
}

/**
 * The auto-stop schedule fired. Stops the app only if it is still the run the
 * schedule was made for and its (possibly extended) time has come; a stale
 * schedule does nothing. Answers whether a stop began.
 */
export async function autoStop(event: Extract<ScheduledEvent, { type: "auto-stop" }>, deps: Deps): Promise<boolean> {
  const app = await deps.store.get<AppItem>(appKey(event.ownerId, event.appId));
  if (app?.status !== "running" || app.runId !== event.runId) return false;
  if (app.stopsAt && app.stopsAt > Date.now() + 5_000) return false;
  let stopping: AppItem;
  try {
    stopping = await beginStop(deps, event.ownerId, event.appId, ["running"], event.runId);
  } catch (err) {
    if (err instanceof ConflictError) return false;
    throw err;
  }
  await announce(deps, stopping, "stopping", { reason: "auto-stop" });
  await recordAudit(deps, {
    userId: app.ownerId,
    action: "AUTO_STOP",
    resourceType: "app",
    resourceId: app.id,
    details: { reason: "timeout", timeout: app.autoStopTimeout, startedAt: app.startedAt },
  });
  return true; // the caller runs the stop under the app's lock
}
