import { readEnv } from "../apps/env.ts";
import { masker } from "../apps/mask.ts";
import { runAppCommand } from "../apps/remote.ts";
import { getAppItem } from "../apps/service.ts";
import { NotFoundError } from "../errors.ts";
import type { Deps } from "../ports.ts";
import { type ServerItem, serverKey } from "../servers/entity.ts";
import { type AppLogLine, composeLogsCommand, lastErrors, parseComposeLine } from "./compose-logs.ts";
import { RemoteCommandError } from "./entity.ts";

/** Under API Gateway's 29 s. */
const LOGS_TIMEOUT_MS = 20_000;
/** What the response carries at most (Lambda answers up to 6 MB); the oldest lines go first. */
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;
/** Held while reading (`--tail` is per container): past it, the oldest half is dropped. */
const MAX_READ_BYTES = 2 * MAX_RESPONSE_BYTES;

const sizeOf = (l: AppLogLine) => Buffer.byteLength(l.line) + l.service.length + 64;
const byTime = (a: AppLogLine, b: AppLogLine) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0);

/**
 * `GET /api/apps/:id/logs`: the last `tail` lines of `docker compose logs
 * --timestamps` (all containers, merged in time order), from `since` (a
 * normalized time, compose-logs.ts) if given, masked like deploy logs.
 */
export async function readAppLogs(
  deps: Deps,
  ownerId: string,
  appId: string,
  q: { tail: number; since?: string },
): Promise<{ items: AppLogLine[]; truncated: boolean }> {
  const app = await getAppItem(deps, ownerId, appId);
  const [server, env] = await Promise.all([
    deps.store.get<ServerItem>(serverKey(app.ownerId, app.serverId)),
    readEnv(deps, app.ownerId, app.id),
  ]);
  if (!server) throw new NotFoundError("Server");
  const mask = masker(Object.values(env));
  let lines: AppLogLine[] = [];
  let bytes = 0;
  let dropped = false;
  const command = composeLogsCommand({ tail: q.tail, since: q.since });
  const result = await runAppCommand(deps, app, server, command, {
    writeDotenv: false,
    env,
    timeoutMs: LOGS_TIMEOUT_MS,
    onLine: (stream, raw) => {
      if (stream === "stderr") return; // its last lines are in the result (stderrTail)
      const parsed = parseComposeLine(raw);
      if (!parsed) return;
      const line = { ...parsed, line: mask(parsed.line) };
      lines.push(line);
      bytes += sizeOf(line);
      if (bytes > MAX_READ_BYTES) {
        lines.sort(byTime);
        lines = lines.slice(Math.floor(lines.length / 2));
        bytes = lines.reduce((n, l) => n + sizeOf(l), 0);
        dropped = true;
      }
    },
  });
  if (result.exitCode !== 0)
    throw new RemoteCommandError(
      `docker compose logs exited with ${result.exitCode ?? "a signal"} in ${app.cdPath}: ${lastErrors(result.stderrTail, mask) || "no output"}`,
    );
  lines.sort(byTime);
  let items = lines.slice(-q.tail);
  let size = items.reduce((n, l) => n + sizeOf(l), 0);
  let cut = 0;
  while (size > MAX_RESPONSE_BYTES && cut < items.length - 1) size -= sizeOf(items[cut++] as AppLogLine);
  items = items.slice(cut);
  return { items, truncated: dropped || cut > 0 };
}
