import { ValidationError } from "../errors.ts";

/**
 * Building `/bin/sh` scripts for a user's server. The user's own command is
 * shell on purpose (it is their server); everything Hoist interpolates around
 * it — directories, file paths, variable names and values — is quoted here so
 * nothing can inject.
 */

/** Exit status of a script whose working directory is missing or not enterable. */
export const CWD_MISSING_EXIT = 97;
/** The first words of the line such a script prints on stderr. */
export const CWD_MISSING_MARKER = "hoist: cannot change to directory";

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** POSIX single-quote quoting: `it's` → `'it'\''s'`. Newlines and the empty string are fine; NUL cannot be passed. */
export function quote(value: string): string {
  if (value.includes("\0")) throw new ValidationError("Shell arguments cannot contain NUL bytes");
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** A path with a leading `~` or `~/` made relative to `$HOME`; the rest is quoted literally. */
export function quotePath(path: string): string {
  if (path === "~") return '"$HOME"';
  if (path.startsWith("~/")) return `"$HOME"/${quote(path.slice(2))}`;
  return quote(path);
}

export function isEnvName(name: string): boolean {
  return ENV_NAME.test(name);
}

/** `export NAME='value'` lines, in the object's order. Throws on a name that is not a shell identifier. */
export function envAssignments(env: Record<string, string>): string[] {
  return Object.entries(env).map(([name, value]) => {
    if (!isEnvName(name)) throw new ValidationError(`Invalid environment variable name: ${JSON.stringify(name)}`);
    return `export ${name}=${quote(value)}`;
  });
}

/** `cd` into `cwd`, or print the marker and exit with {@link CWD_MISSING_EXIT}. */
function changeDirectory(cwd: string): string {
  const marker = quote(`${CWD_MISSING_MARKER}: ${cwd}`);
  return `cd -- ${quotePath(cwd)} || { printf '%s\\n' ${marker} >&2; exit ${CWD_MISSING_EXIT}; }`;
}

export interface ScriptInput {
  /** Working directory; `~/…` is relative to the user's home. */
  cwd?: string;
  /** Exported before the command runs. */
  env?: Record<string, string>;
  /** The user's command, run as shell. */
  command: string;
}

/**
 * A script that enters `cwd`, exports `env` and runs `command`, with no `set -e`.
 *
 * The command runs in a background subshell that the script waits for, with
 * the script's stdin passed through, so that a TERM/INT/HUP sent to the script
 * (what sshd's "signal" request reaches: only the session's shell) is forwarded
 * to the whole process group — `docker compose` and friends included — instead
 * of leaving them running. The exit status is the command's.
 */
export function buildScript({ cwd, env = {}, command }: ScriptInput): string {
  return [
    ...(cwd === undefined ? [] : [changeDirectory(cwd)]),
    ...envAssignments(env),
    "exec 3<&0",
    "trap 'trap - TERM INT HUP; kill -TERM 0 2>/dev/null' TERM INT HUP",
    "(",
    command,
    ") 0<&3 3<&- &",
    'wait "$!"',
    "",
  ].join("\n");
}

/**
 * A script that writes its stdin to `path` (relative to `cwd` when given)
 * with mode 0600: written to a temporary file under `umask 077`, then renamed
 * over the target, so the file is never half-written nor briefly readable.
 */
export function writeFileScript(path: string, opts: { cwd?: string } = {}): string {
  const target = quotePath(path);
  return [
    ...(opts.cwd === undefined ? [] : [changeDirectory(opts.cwd)]),
    "umask 077",
    `hoist_tmp=${target}.hoist-$$`,
    `if cat > "$hoist_tmp" && mv -f -- "$hoist_tmp" ${target}; then exit 0; fi`,
    'rm -f -- "$hoist_tmp"',
    "exit 1",
    "",
  ].join("\n");
}
