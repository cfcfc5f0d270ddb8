import type { Deps } from "../ports.ts";
import type { ServerItem } from "../servers/entity.ts";
import { buildScript } from "../servers/shell.ts";
import type { ExecOptions, ExecResult } from "../servers/ssh.ts";
import { pinHostKey, targetFor } from "../servers/status.ts";
import type { AppItem } from "./entity.ts";
import { readEnv } from "./env.ts";

/**
 * `.env` content, one variable per line, read the same by `sh` (`. ./.env`)
 * and by Docker Compose: single quotes keep a value literal in both; a value
 * that itself has a single quote is double-quoted with `\ " $ \`` escaped.
 */
export function dotenv(env: Record<string, string>): string {
  return Object.entries(env)
    .map(([k, v]) => `${k}=${v.includes("'") ? `"${v.replace(/[\\"$`]/g, "\\$&")}"` : `'${v}'`}\n`)
    .join("");
}

/**
 * Runs one of the app's commands in its `cdPath`: first writes the app's env
 * vars to `.env` (0600, from stdin, so values never appear in a command line
 * or `ps`), exports them and Hoist's own variables, then runs the command.
 * With `writeDotenv: false` (reading logs, an exec) the variables are
 * exported from stdin alone and `.env` is left as the last deploy or start
 * wrote it.
 */
export async function runAppCommand(
  deps: Deps,
  app: AppItem,
  server: ServerItem,
  command: string,
  opts: {
    /** The app's variables, if the caller already read them (to mask them in output). */
    env?: Record<string, string>;
    extraEnv?: Record<string, string>;
    timeoutMs?: number;
    onLine?: (stream: "stdout" | "stderr", line: string) => void;
    signal?: AbortSignal;
    /** Backpressure from a consumer of `onLine` that can fall behind (see ExecOptions). */
    flow?: ExecOptions["flow"];
    /** Write `.env` first (default true); false: only export the variables. */
    writeDotenv?: boolean;
  } = {},
): Promise<ExecResult> {
  const env = opts.env ?? (await readEnv(deps, app.ownerId, app.id));
  const script = buildScript({
    cwd: app.cdPath,
    env: { HOIST_APP_ID: app.id, ...opts.extraEnv },
    command: [
      ...(opts.writeDotenv === false
        ? ['set -a; eval "$(cat)"; set +a'] // the same lines `. ./.env` reads: single-quoted assignments
        : [
            "umask 077",
            "hoist_env=.env.hoist-$$",
            'cat > "$hoist_env" && mv -f -- "$hoist_env" .env || { rm -f -- "$hoist_env"; echo "hoist: could not write .env" >&2; exit 96; }',
            "umask 022",
            "set -a; . ./.env; set +a",
          ]),
      `(\n${command}\n) </dev/null`,
    ].join("\n"),
  });
  const result = await deps.executor.exec(await targetFor(deps, server), script, {
    stdin: dotenv(env),
    timeoutMs: opts.timeoutMs ?? deps.config.ssh.commandTimeoutMs,
    connectTimeoutMs: deps.config.ssh.connectTimeoutMs,
    onLine: opts.onLine,
    signal: opts.signal,
    flow: opts.flow,
  });
  await pinHostKey(deps, server, result.hostKeyFingerprint);
  return result;
}

/** The commit checked out in the app's directory (`git rev-parse HEAD`), or null when it is not a git checkout. */
export async function readRemoteHead(deps: Deps, app: AppItem, server: ServerItem): Promise<string | null> {
  try {
    const result = await deps.executor.exec(
      await targetFor(deps, server),
      buildScript({ cwd: app.cdPath, command: "git rev-parse --verify --quiet HEAD" }),
      { timeoutMs: deps.config.ssh.statusTimeoutMs, connectTimeoutMs: deps.config.ssh.connectTimeoutMs },
    );
    const sha = result.stdoutTail.at(-1)?.trim() ?? "";
    return result.exitCode === 0 && /^[0-9a-f]{40}([0-9a-f]{24})?$/.test(sha) ? sha : null;
  } catch (err) {
    deps.logger.warn("could not read the deployed commit", { appId: app.id, error: err });
    return null;
  }
}
