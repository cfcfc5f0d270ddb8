import type { Actor } from "../actor.ts";
import { readEnv } from "../apps/env.ts";
import { masker } from "../apps/mask.ts";
import { runAppCommand } from "../apps/remote.ts";
import { getAppItem } from "../apps/service.ts";
import { recordAudit } from "../audit/service.ts";
import { NotFoundError } from "../errors.ts";
import type { Deps } from "../ports.ts";
import { type ServerItem, serverKey } from "../servers/entity.ts";
import { SshError } from "../servers/ssh-error.ts";

/** API Gateway answers 504 after 29 s: the command gets at most this long (less if HOIST_EXEC_TIMEOUT_SECONDS is shorter). */
export const HTTP_EXEC_TIMEOUT_MS = 25_000;
/** Output kept for the response (stdout and stderr as they came, one line each). */
export const HTTP_EXEC_MAX_OUTPUT_BYTES = 64 * 1024;

export interface ExecOnceResult {
  /** null when the command was stopped (timeout, output cap) before it exited. */
  exitCode: number | null;
  output: string;
  truncated: boolean;
  timedOut: boolean;
}

/**
 * `POST /api/apps/:id/exec`, for scripts: runs the command in the request
 * (cdPath, the app's env exported, output masked), audited before it runs.
 * Past the output cap the command is stopped and `truncated` says so.
 */
export async function execOnce(deps: Deps, actor: Actor, appId: string, command: string): Promise<ExecOnceResult> {
  const app = await getAppItem(deps, actor.userId, appId);
  const [server, env] = await Promise.all([
    deps.store.get<ServerItem>(serverKey(app.ownerId, app.serverId)),
    readEnv(deps, app.ownerId, app.id),
  ]);
  if (!server) throw new NotFoundError("Server");
  await recordAudit(deps, {
    userId: actor.userId,
    action: "app.exec",
    resourceType: "app",
    resourceId: app.id,
    details: { command, via: "http" },
    ipAddress: actor.ip,
  });
  const mask = masker(Object.values(env));
  const lines: string[] = [];
  let bytes = 0;
  let truncated = false;
  const abort = new AbortController();
  try {
    const result = await runAppCommand(deps, app, server, command, {
      writeDotenv: false,
      env,
      timeoutMs: Math.min(HTTP_EXEC_TIMEOUT_MS, deps.config.operate.execTimeoutMs),
      signal: abort.signal,
      onLine: (_stream, raw) => {
        if (truncated) return;
        const line = mask(raw);
        const size = Buffer.byteLength(line) + 1;
        if (bytes + size > HTTP_EXEC_MAX_OUTPUT_BYTES) {
          truncated = true;
          abort.abort();
          return;
        }
        bytes += size;
        lines.push(line);
      },
    });
    return { exitCode: result.exitCode, output: lines.join("\n"), truncated, timedOut: false };
  } catch (err) {
    if (!(err instanceof SshError)) throw err;
    const timedOut = err.kind === "command-timeout";
    if (!timedOut && !(err.kind === "aborted" && truncated)) throw err; // could not connect or run: a 502/504 problem
    return { exitCode: null, output: lines.join("\n"), truncated, timedOut };
  }
}
