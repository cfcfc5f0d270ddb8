import { HoistError } from "../errors.ts";

/**
 * Files put on a user's server (app templates): the shapes of the Executor's
 * `writeFiles` and the conflict it reports. No ssh2 here, so the http
 * function can name them without loading the SSH client (see
 * functions/src/ports/lazy-executor.ts).
 */

/** A file under the target directory: its relative path, its exact bytes, and its permission bits if they matter. */
export interface RemoteFile {
  /** Relative, `/`-separated, normalized (see {@link relativePathProblem}). */
  path: string;
  content: Uint8Array;
  /** Permission bits (`0o755`), applied after writing whatever the server's umask; absent: the server's default. */
  mode?: number;
}

export interface WriteFilesOptions {
  /** Overwrite files that exist; without it, any existing one refuses the lot and nothing is written. */
  force?: boolean;
  /** Limit on the transfer, from the moment it has a connection. */
  timeoutMs: number;
  /** Limit on obtaining a connection (as for commands). */
  connectTimeoutMs: number;
  signal?: AbortSignal;
}

export interface WriteFilesResult {
  /** The paths written, as given. */
  written: string[];
  /** Those that existed and were overwritten (`force`). */
  overwritten: string[];
  /** The server's host key, to pin on first use. */
  hostKeyFingerprint: string;
  durationMs: number;
}

/** Why `path` is not a file path Hoist writes under a directory, or null when it is one. */
export function relativePathProblem(path: string): string | null {
  if (path.length === 0 || path.length > 255) return "1 to 255 characters";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\u0000-\u001f\u007f\\]/.test(path)) return "no control characters or backslashes";
  if (path.startsWith("/")) return "a relative path (no leading /)";
  const segments = path.split("/");
  if (segments.some((s) => s === "")) return "no empty segments (// or a trailing /)";
  if (segments.some((s) => s === "." || s === "..")) return "no . or .. segments";
  return null;
}

/**
 * Why a set of relative paths cannot be written together (a duplicate, or a
 * path that is also another's directory), or null.
 */
export function pathSetProblem(paths: string[]): string | null {
  const seen = new Set<string>();
  for (const path of paths) {
    if (seen.has(path)) return `${path} appears twice`;
    seen.add(path);
  }
  for (const path of paths) {
    const segments = path.split("/");
    for (let i = 1; i < segments.length; i++) {
      const dir = segments.slice(0, i).join("/");
      if (seen.has(dir)) return `${dir} is a file and also the directory of ${path}`;
    }
  }
  return null;
}

/**
 * 409: files exist where a template would write, and `force` was not given.
 * Nothing was written, unless `raced`: they appeared between the check and
 * the write (created exclusively, they were not overwritten; the other files were written).
 */
export class FilesExistError extends HoistError {
  override name = "FilesExistError";
  constructor(
    readonly dir: string,
    readonly existing: string[],
    raced = false,
  ) {
    const shown = existing.slice(0, 20).join(", ");
    const more = existing.length > 20 ? ` and ${existing.length - 20} more` : "";
    super(
      409,
      "files_exist",
      `${existing.length === 1 ? "A file already exists" : `${existing.length} files already exist`} in ${dir}: ` +
        `${shown}${more}. ${raced ? "They appeared while the others were written" : "Nothing was written"}; ` +
        'send "force": true to overwrite them',
      { members: { existing } },
    );
  }
}
