import { type AppItem, appKey } from "../apps/entity.ts";
import { readEnv } from "../apps/env.ts";
import { masker } from "../apps/mask.ts";
import { runAppCommand } from "../apps/remote.ts";
import { auditItem } from "../audit/service.ts";
import type { Scope } from "../auth/api-token-entity.ts";
import { grantedScopes } from "../auth/scopes.ts";
import { ConditionFailedError, errorMessage } from "../errors.ts";
import type { Deps, Job } from "../ports.ts";
import { type ServerItem, serverKey } from "../servers/entity.ts";
import { SshError } from "../servers/ssh-error.ts";
import { cond } from "../store/store.ts";
import { type UserItem, userKeys } from "../users/entity.ts";
import { EXEC_TTL_SECONDS, type ExecItem, execIdOf, execKey } from "./entity.ts";
import { type ExecEnd, ExecOutput } from "./exec-output.ts";
import { operateQueue } from "./tail-lease.ts";

/**
 * One-shot exec over the WebSocket: the ws handler checks and records it (the
 * exec item and its audit entry in one transaction) and queues an `exec` job;
 * the job runs the command in the app's cdPath with its environment and posts
 * the output to the connection that asked. The same queue-and-post path runs
 * on AWS (the ws Lambda cannot hold the command) and embedded.
 */

/** How often a running exec looks for its cancel (a GetItem: it works wherever the job runs). */
const CANCEL_POLL_MS = 400;

export interface ExecRequest {
  id: string;
  appId: string;
  command: string;
}

/**
 * `{"action":"exec"}`: the connection's user must own the app, and a socket
 * opened with an API token needs `write` (exec runs arbitrary commands).
 * Answers why it was refused, or undefined once queued.
 */
export async function startExec(
  deps: Deps,
  connection: { connectionId: string; userId: string; scopes?: Scope[] },
  msg: ExecRequest,
): Promise<string | undefined> {
  const [user, app] = await Promise.all([
    deps.store.get<UserItem>(userKeys.user(connection.userId)),
    deps.store.get<AppItem>(appKey(connection.userId, msg.appId)),
  ]);
  if (!user || user.disabled) return "This account may not run commands";
  if (connection.scopes && !grantedScopes(connection.scopes, user.role).has("write"))
    return `This API token lacks the "write" scope (it has: ${connection.scopes.join(", ")}); exec needs "write"`;
  if (!app) return `App ${msg.appId} not found`; // another tenant's app: the same answer as none
  const now = Date.now();
  const execId = execIdOf(connection.connectionId, msg.id);
  const item: ExecItem = {
    ...execKey(execId),
    entity: "exec",
    id: execId,
    clientId: msg.id,
    connectionId: connection.connectionId,
    ownerId: user.id,
    appId: app.id,
    command: msg.command,
    status: "queued",
    createdAt: now,
    expiresAt: Math.floor(now / 1000) + EXEC_TTL_SECONDS,
  };
  const audit = auditItem(
    {
      userId: user.id,
      action: "app.exec",
      resourceType: "app",
      resourceId: app.id,
      details: { command: msg.command, execId, via: "websocket" },
    },
    now,
  );
  const job: Job = { type: "exec", ownerId: user.id, appId: app.id, execId, serverId: app.serverId };
  const queue = operateQueue(deps);
  const sending = queue.sendWith?.(job);
  try {
    await deps.store.transact([
      { put: item, condition: cond.notExists() },
      { put: audit },
      ...(sending ? [sending.op] : []),
    ]);
  } catch (err) {
    sending?.failed();
    if (err instanceof ConditionFailedError) return `An exec with id ${msg.id} was already started on this connection`;
    throw err;
  }
  if (sending) {
    sending.committed();
    return undefined;
  }
  try {
    await queue.send(job);
  } catch (err) {
    deps.logger.error("could not queue an exec", { execId, error: err });
    await deps.store.update(execKey(execId), { set: { status: "ended", endedAt: Date.now(), exitCode: null } });
    return "Could not queue the command; try again";
  }
  return undefined;
}

/** `{"action":"exec-cancel"}`: marks the connection's exec; its job stops the command within a moment. */
export async function cancelExec(deps: Deps, connectionId: string, id: string): Promise<string | undefined> {
  try {
    await deps.store.update(execKey(execIdOf(connectionId, id)), {
      set: { cancelled: true },
      condition: cond.and(cond.exists(), cond.eq("connectionId", connectionId), cond.compare("status", "<>", "ended")),
    });
    return undefined;
  } catch (err) {
    if (err instanceof ConditionFailedError) return `No running exec with id ${id} on this connection`;
    throw err;
  }
}

/**
 * `exec`: runs the command once (a redelivered job finds it no longer queued
 * and does nothing). The app, its env and its server are read while the exec
 * is marked running: one round trip before the command starts.
 */
export async function execJob(job: Extract<Job, { type: "exec" }>, deps: Deps): Promise<void> {
  const reads = readTarget(deps, job);
  reads.catch(() => undefined); // handled below, or dropped with a redelivery
  let item: ExecItem;
  try {
    item = await deps.store.update<ExecItem>(execKey(job.execId), {
      set: { status: "running", startedAt: Date.now() },
      condition: cond.and(cond.exists(), cond.eq("status", "queued")),
    });
  } catch (err) {
    if (err instanceof ConditionFailedError) return;
    throw err;
  }
  const end = await runExec(deps, item, reads).catch(async (err: unknown): Promise<ExecEnd> => {
    deps.logger.error("exec failed", { execId: item.id, error: err });
    const failed = { exitCode: null, error: `The command could not be run: ${errorMessage(err)}` };
    await deps.broadcaster
      .post(item.connectionId, { type: "exec-end", id: item.clientId, ...failed })
      .catch(() => undefined);
    return failed;
  });
  await deps.store
    .update(execKey(item.id), {
      set: { status: "ended", endedAt: Date.now(), exitCode: end.exitCode },
      condition: cond.exists(),
    })
    .catch((err: unknown) => deps.logger.warn("could not record an exec's end", { execId: item.id, error: err }));
}

/** The app, its env and its server (read after the app when the job does not name it). */
async function readTarget(deps: Deps, job: Extract<Job, { type: "exec" }>) {
  const server = (serverId: string) => deps.store.get<ServerItem>(serverKey(job.ownerId, serverId));
  const [app, env, known] = await Promise.all([
    deps.store.get<AppItem>(appKey(job.ownerId, job.appId), { consistent: true }),
    readEnv(deps, job.ownerId, job.appId),
    job.serverId ? server(job.serverId) : undefined,
  ]);
  const onServer = app && (app.serverId === job.serverId ? known : await server(app.serverId));
  return { app, env, server: onServer };
}

type StopWhy = "cancelled" | "truncated" | "gone" | "stopping";

async function runExec(deps: Deps, item: ExecItem, reads: ReturnType<typeof readTarget>): Promise<ExecEnd> {
  const abort = new AbortController();
  let why: StopWhy | undefined;
  const stop = (reason: StopWhy) => {
    why ??= reason;
    abort.abort();
  };
  const { app, env, server } = await reads;
  const output = new ExecOutput(
    deps,
    item.connectionId,
    item.clientId,
    masker(Object.values(env)),
    deps.config.operate.execMaxOutputBytes,
    { cap: () => stop("truncated"), gone: () => stop("gone") },
  );
  if (!app || !server) {
    const end = { exitCode: null, error: "The app or its server no longer exists" };
    await output.finish(end);
    return end;
  }
  if (item.cancelled) {
    const end = { exitCode: null, cancelled: true };
    await output.finish(end);
    return end;
  }
  const poll = setInterval(() => {
    deps.store
      .get<ExecItem>(execKey(item.id), { consistent: true })
      .then((now) => now?.cancelled && stop("cancelled"))
      .catch(() => undefined);
  }, CANCEL_POLL_MS);
  const onStopping = () => stop("stopping");
  deps.stopping?.addEventListener("abort", onStopping, { once: true });
  if (deps.stopping?.aborted) stop("stopping");
  let end: ExecEnd;
  try {
    const result = await runAppCommand(deps, app, server, item.command, {
      writeDotenv: false,
      env,
      timeoutMs: deps.config.operate.execTimeoutMs,
      onLine: output.line,
      signal: abort.signal,
      flow: output,
    });
    end = { exitCode: result.exitCode };
  } catch (err) {
    if (err instanceof SshError && err.kind === "command-timeout") end = { exitCode: null, timedOut: true };
    else if (why) end = { exitCode: null };
    else end = { exitCode: null, error: errorMessage(err) };
  } finally {
    clearInterval(poll);
    deps.stopping?.removeEventListener("abort", onStopping);
  }
  if (why === "cancelled") end.cancelled = true;
  if (why === "stopping") end.error = "Hoist is stopping: the command was stopped";
  await output.finish(end);
  return end;
}
