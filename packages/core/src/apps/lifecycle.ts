import { randomBytes } from "node:crypto";
import type { Actor } from "../actor.ts";
import { auditAction, recordAudit } from "../audit/service.ts";
import { ConditionFailedError, ConflictError, NotFoundError } from "../errors.ts";
import type { Deps, Job, ScheduledEvent } from "../ports.ts";
import { publish } from "../realtime/publish.ts";
import { type ServerItem, serverKey } from "../servers/entity.ts";
import { SshError } from "../servers/ssh.ts";
import { cond } from "../store/store.ts";
import { recordRunningMinutes } from "../usage/service.ts";
import { type AppItem, type AppStatus, appKey, commandsOf } from "./entity.ts";
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
 * SSH work; the worker moves it on to `running` or `error`.
 */
export async function startApp(
  deps: Deps,
  actor: Actor,
  appId: string,
  timeoutMinutes?: number,
): Promise<LifecycleAnswer> {
  const runId = randomBytes(9).toString("base64url");
  let app: AppItem;
  try {
    app = await deps.store.update<AppItem>(appKey(actor.userId, appId), {
      set: {
        status: "starting",
        runId,
        lastError: null,
        startedAt: null,
        stopsAt: null,
        runTimeout: timeoutMinutes ?? null,
        updatedAt: Date.now(),
      },
      condition: cond.and(cond.exists(), cond.in("status", ["stopped", "error"])),
    });
  } catch (err) {
    throw await transitionError(deps, actor.userId, appId, err, "start");
  }
  await deps.queue.send({ type: "app-start", ownerId: actor.userId, appId, runId });
  await announce(deps, app, "starting");
  await auditAction(deps, actor, "app", "app.start", appId, { timeout: timeoutMinutes ?? app.autoStopTimeout });
  return answer(app, "Starting");
}

/** `POST /api/apps/:id/stop`: `running`/`error` → `stopping`, cancels the auto-stop, queues the SSH work. */
export async function stopApp(deps: Deps, actor: Actor, appId: string): Promise<LifecycleAnswer> {
  const app = await beginStop(deps, actor.userId, appId, ["running", "error"]);
  await deps.scheduler.cancel(autoStopScheduleName(appId));
  await deps.queue.send({ type: "app-stop", ownerId: actor.userId, appId, runId: app.runId ?? "none" });
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

async function beginStop(
  deps: Deps,
  ownerId: string,
  appId: string,
  from: AppStatus[],
  runId?: string,
): Promise<AppItem> {
  const before = await deps.store.get<AppItem>(appKey(ownerId, appId));
  if (!before || !from.includes(before.status) || (runId && before.runId !== runId)) {
    throw await transitionError(deps, ownerId, appId, new ConditionFailedError(), "stop");
  }
  try {
    await deps.store.transact([
      {
        update: {
          ...appKey(ownerId, appId),
          set: { status: "stopping", updatedAt: Date.now() },
          condition: cond.and(cond.eq("status", before.status), cond.eq("runId", before.runId)),
        },
      },
      ...(before.status === "running"
        ? [
            {
              update: {
                ...serverKey(ownerId, before.serverId),
                add: { runningAppsCount: -1 },
                condition: cond.exists(),
              },
            },
          ]
        : []),
    ]);
  } catch (err) {
    throw await transitionError(deps, ownerId, appId, err, "stop");
  }
  return { ...before, status: "stopping" };
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
  await deps.store
    .update(appKey(app.ownerId, app.id), {
      set: {
        status: "error",
        lastError: { message, exitCode, output: tail(output), at: Date.now() },
        updatedAt: Date.now(),
      },
      condition: cond.eq("runId", app.runId),
    })
    .catch((err: unknown) => {
      if (!(err instanceof ConditionFailedError)) throw err;
    });
  await announce(deps, app, "error", { message });
  await recordAudit(deps, {
    userId: app.ownerId,
    action: "app.command_failed",
    resourceType: "app",
    resourceId: app.id,
    details: { message, exitCode },
  });
}

/** Runs the start or stop command for the run the job names; a stale job (another run since) does nothing. */
async function runCommand(deps: Deps, job: Extract<Job, { type: "app-start" | "app-stop" }>) {
  const expected: AppStatus = job.type === "app-start" ? "starting" : "stopping";
  const app = await deps.store.get<AppItem>(appKey(job.ownerId, job.appId));
  if (!app || app.status !== expected || (job.type === "app-start" && app.runId !== job.runId)) {
    deps.logger.info("stale app job; nothing to do", { type: job.type, appId: job.appId });
    return;
  }
  const server = await serverOf(deps, app);
  if (!server) return fail(deps, app, "The app's server no longer exists", null, []);
  const command = job.type === "app-start" ? commandsOf(app).start : commandsOf(app).stop;
  let result: Awaited<ReturnType<typeof runAppCommand>>;
  try {
    result = await runAppCommand(deps, app, server, command);
  } catch (err) {
    if (err instanceof SshError) return fail(deps, app, err.message, null, []);
    throw err;
  }
  if (result.exitCode !== 0) {
    const why =
      result.exitCode === null ? `killed by ${result.signal ?? "a signal"}` : `exited with ${result.exitCode}`;
    return fail(deps, app, `The ${job.type === "app-start" ? "start" : "stop"} command ${why}`, result.exitCode, [
      ...result.stdoutTail,
      ...result.stderrTail,
    ]);
  }
  return job.type === "app-start" ? markRunning(deps, app) : markStopped(deps, app);
}

async function markRunning(deps: Deps, app: AppItem) {
  const now = Date.now();
  const minutes = app.runTimeout ?? app.autoStopTimeout;
  const stopsAt = minutes > 0 ? now + minutes * MINUTE : null;
  try {
    await deps.store.transact([
      {
        update: {
          ...appKey(app.ownerId, app.id),
          set: { status: "running", startedAt: now, stopsAt, updatedAt: now },
          condition: cond.and(cond.eq("status", "starting"), cond.eq("runId", app.runId)),
        },
      },
      { update: { ...serverKey(app.ownerId, app.serverId), add: { runningAppsCount: 1 }, condition: cond.exists() } },
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
  if (app.startedAt) await recordRunningMinutes(deps, app.ownerId, app.startedAt, now);
  await announce(deps, { ...app, startedAt: null, stopsAt: null }, "stopped");
}

export const runAppJob = (job: Extract<Job, { type: "app-start" | "app-stop" }>, deps: Deps) => runCommand(deps, job);

/**
 * The auto-stop schedule fired. Stops the app only if it is still the run the
 * schedule was made for and its (possibly extended) time has come; a stale
 * schedule does nothing.
 */
export async function autoStop(event: Extract<ScheduledEvent, { type: "auto-stop" }>, deps: Deps): Promise<void> {
  const app = await deps.store.get<AppItem>(appKey(event.ownerId, event.appId));
  if (app?.status !== "running" || app.runId !== event.runId) return;
  if (app.stopsAt && app.stopsAt > Date.now() + 5_000) return;
  let stopping: AppItem;
  try {
    stopping = await beginStop(deps, event.ownerId, event.appId, ["running"], event.runId);
  } catch (err) {
    if (err instanceof ConflictError) return;
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
  await runCommand(deps, { type: "app-stop", ownerId: app.ownerId, appId: app.id, runId: stopping.runId ?? "none" });
}
