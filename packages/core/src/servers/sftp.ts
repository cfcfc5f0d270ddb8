import { posix } from "node:path";
import ssh2, { type SFTPWrapper, type Stats } from "ssh2";
import {
  FilesExistError,
  pathSetProblem,
  type RemoteFile,
  relativePathProblem,
  type WriteFilesOptions,
  type WriteFilesResult,
} from "./remote-files.ts";
import { NOT_OPENED, STALE } from "./ssh-command.ts";
import { MAX_TIMER_MS, type SshConnection } from "./ssh-connection.ts";
import { SshError } from "./ssh-error.ts";
import type { Lease } from "./ssh-pool.ts";

/**
 * Writing files into a directory on a server over SFTP, on a channel of a
 * pooled connection: the bytes go as SFTP WRITE requests, never through a
 * shell, so no content needs quoting. All targets are checked first; without
 * `force` any existing one refuses the lot before anything is created, and
 * files are then created exclusively (`wx`), so a file appearing meanwhile is
 * not overwritten either.
 */

const { STATUS_CODE } = ssh2.utils.sftp;
/** Files in flight at once (SFTP pipelines requests on one channel). */
const CONCURRENCY = 8;
/** How long the SFTP channel may take to close before the connection takes no new channel. */
const CLOSE_GRACE_MS = 1000;

/** The directory as SFTP names it: `~` and `~/…` are relative to the login directory, where SFTP paths start. */
export function sftpDir(cdPath: string): string {
  const dir = cdPath === "~" ? "." : cdPath.startsWith("~/") ? cdPath.slice(2) : cdPath;
  const normalized = posix.normalize(dir || ".");
  return normalized.length > 1 ? normalized.replace(/\/+$/, "") : normalized;
}

type Callback<T> = (err: (Error & { code?: unknown }) | null | undefined, value?: T) => void;

/**
 * Writes `files` under `dir` on the lease's connection; releases the lease
 * before settling. With `mayRetry`, an SFTP channel that could not be opened
 * resolves {@link STALE} (try a fresh connection), as for commands.
 */
export async function writeFilesOnLease(
  lease: Lease,
  where: string,
  dir: string,
  files: RemoteFile[],
  opts: WriteFilesOptions,
  startedAt: number,
  mayRetry: boolean,
): Promise<WriteFilesResult | typeof STALE> {
  const connection = lease.connection;
  const fingerprint = connection.fingerprint;
  const base = sftpDir(dir);
  let sftp: SFTPWrapper | undefined;
  let retire = false;
  const guard = guardOf(connection, opts, fingerprint);
  const opening = openSftp(connection, mayRetry);
  try {
    const opened = await guard.run(opening);
    if (opened === STALE) {
      retire = true;
      return STALE;
    }
    sftp = opened;
    const io = new SftpIo(opened, where, connection);
    const targets = files.map((f) => ({ file: f, remote: posix.join(base, f.path) }));
    const present = await guard.run(Promise.all(targets.map((t) => io.exists(t.remote))));
    const existing = targets.filter((_, i) => present[i]).map((t) => t.file.path);
    if (existing.length > 0 && !opts.force) throw new FilesExistError(dir, existing);

    const dirs = new Map<string, Promise<void>>();
    const ensureDir = (path: string): Promise<void> => {
      let made = dirs.get(path);
      if (!made) {
        made = io.ensureDir(path, ensureDir);
        dirs.set(path, made);
      }
      return made;
    };
    await guard.run(Promise.all([base, ...targets.map((t) => posix.dirname(t.remote))].map(ensureDir)));

    const raced: string[] = [];
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < targets.length; i = next++) {
        const { file, remote } = targets[i] as (typeof targets)[number];
        const wrote = await io.writeFile(remote, file, opts.force === true);
        if (!wrote) raced.push(file.path);
      }
    };
    await guard.run(Promise.all(Array.from({ length: Math.min(CONCURRENCY, targets.length) }, worker)));
    if (raced.length > 0) throw new FilesExistError(dir, raced, true);
    return {
      written: files.map((f) => f.path),
      overwritten: existing,
      hostKeyFingerprint: fingerprint,
      durationMs: Math.round(performance.now() - startedAt),
    };
  } finally {
    guard.stop();
    if (sftp && !(await closeSftp(sftp))) retire = true;
    if (!sftp) {
      // Given up (timeout, cancel) while the channel was opening: close it if it opens after all.
      retire = true;
      opening.then(
        (late) => late !== STALE && late.end(),
        () => {},
      );
    }
    await lease.release(retire || connection.lost !== null);
  }
}

/** Checks every path of `files` is one Hoist writes (relative, no `..`, no duplicates): a programming error otherwise. */
export function assertWritable(files: RemoteFile[]): void {
  for (const file of files) {
    const problem = relativePathProblem(file.path);
    if (problem) throw new Error(`writeFiles: bad path ${JSON.stringify(file.path)}: ${problem}`);
    if (file.mode !== undefined && !(Number.isInteger(file.mode) && file.mode >= 0 && file.mode <= 0o7777))
      throw new Error(`writeFiles: bad mode for ${file.path}`);
  }
  const problem = pathSetProblem(files.map((f) => f.path));
  if (problem) throw new Error(`writeFiles: ${problem}`);
}

/** The transfer's limits: its timeout, the caller's cancel, and the connection's loss, each failing what is in flight. */
function guardOf(connection: SshConnection, opts: WriteFilesOptions, fingerprint: string) {
  let fail: (err: SshError) => void = () => {};
  const failed = new Promise<never>((_, reject) => {
    fail = reject;
  });
  failed.catch(() => {});
  const timer = setTimeout(
    () => fail(new SshError("command-timeout", `Writing files timed out after ${opts.timeoutMs} ms`, fingerprint)),
    Math.min(opts.timeoutMs, MAX_TIMER_MS),
  );
  const onAbort = () => fail(new SshError("aborted", "Writing files was cancelled", fingerprint));
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  if (opts.signal?.aborted) onAbort();
  const stopListening = connection.onLost((error) => fail(error));
  return {
    run: <T>(step: Promise<T>): Promise<T> => Promise.race([step, failed]),
    stop() {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      stopListening();
    },
  };
}

function openSftp(connection: SshConnection, mayRetry: boolean): Promise<SFTPWrapper | typeof STALE> {
  return new Promise((resolve, reject) => {
    connection.sftp((err, sftp) => {
      if (sftp) return resolve(sftp);
      if (mayRetry && NOT_OPENED.test(err?.message ?? "")) return resolve(STALE);
      const why = err?.message ?? "no channel";
      reject(connection.lost ?? new SshError("protocol", `Could not start SFTP: ${why}`, connection.fingerprint));
    });
  });
}

/** Ends the SFTP channel; whether it closed within the grace period. */
function closeSftp(sftp: SFTPWrapper): Promise<boolean> {
  return new Promise((resolve) => {
    const outgoing = (sftp as unknown as { outgoing?: { state?: string } }).outgoing;
    if (outgoing?.state === "closed") return resolve(true);
    const timer = setTimeout(() => resolve(false), CLOSE_GRACE_MS);
    sftp.once("close", () => {
      clearTimeout(timer);
      resolve(true);
    });
    try {
      sftp.end();
    } catch {
      clearTimeout(timer);
      resolve(false);
    }
  });
}

/** SFTP requests as promises, their failures as {@link SshError}s naming the path. */
class SftpIo {
  constructor(
    private readonly sftp: SFTPWrapper,
    private readonly where: string,
    private readonly connection: SshConnection,
  ) {}

  private call<T>(what: string, path: string, fn: (cb: Callback<T>) => void): Promise<T> {
    return new Promise((resolve, reject) => {
      try {
        fn((err, value) => (err ? reject(this.error(err, what, path)) : resolve(value as T)));
      } catch (err) {
        reject(this.error(err as Error, what, path));
      }
    });
  }

  private error(err: Error & { code?: unknown }, what: string, path: string): SshError {
    if (this.connection.lost) return this.connection.lost;
    const error = new SshError(
      "protocol",
      `Could not ${what} ${path} on ${this.where}: ${err.message}`,
      this.connection.fingerprint,
    );
    return Object.assign(error, { sftpCode: err.code });
  }

  private lstat(path: string): Promise<Stats | null> {
    return this.call<Stats>("check", path, (cb) => this.sftp.lstat(path, cb)).catch((err: unknown) => {
      if (codeOf(err) === STATUS_CODE.NO_SUCH_FILE) return null;
      throw err;
    });
  }

  async exists(path: string): Promise<boolean> {
    return (await this.lstat(path)) !== null;
  }

  /** mkdir -p, one level at a time from the deepest that exists (`ensure` memoizes the parents). */
  async ensureDir(path: string, ensure: (path: string) => Promise<void>): Promise<void> {
    const stats = await this.call<Stats>("check", path, (cb) => this.sftp.stat(path, cb)).catch((err: unknown) => {
      if (codeOf(err) === STATUS_CODE.NO_SUCH_FILE) return null;
      throw err;
    });
    if (stats) {
      if (stats.isDirectory()) return;
      throw new SshError(
        "protocol",
        `${path} on ${this.where} exists and is not a directory`,
        this.connection.fingerprint,
      );
    }
    const parent = posix.dirname(path);
    if (parent !== path) await ensure(parent);
    await this.call<void>("create the directory", path, (cb) => this.sftp.mkdir(path, cb)).catch(
      async (err: unknown) => {
        // Someone else made it meanwhile: fine.
        const now = await this.lstat(path).catch(() => null);
        if (!now?.isDirectory()) throw err;
      },
    );
  }

  /**
   * Writes the exact bytes (then the mode, if any, whatever the umask). Without
   * `force` the file is created exclusively: false when it appeared meanwhile.
   */
  async writeFile(path: string, file: RemoteFile, force: boolean): Promise<boolean> {
    const attrs = file.mode === undefined ? {} : { mode: file.mode };
    let handle: Buffer;
    try {
      handle = await this.call<Buffer>("create", path, (cb) => this.sftp.open(path, force ? "w" : "wx", attrs, cb));
    } catch (err) {
      if (!force && !this.connection.lost && (await this.lstat(path).catch(() => null))) return false;
      throw err;
    }
    try {
      const bytes = Buffer.from(file.content.buffer, file.content.byteOffset, file.content.byteLength);
      if (bytes.length > 0)
        await this.call<void>("write", path, (cb) => this.sftp.write(handle, bytes, 0, bytes.length, 0, cb));
      if (file.mode !== undefined) {
        const mode = file.mode;
        await this.call<void>("set the mode of", path, (cb) => this.sftp.fchmod(handle, mode, cb));
      }
    } catch (err) {
      this.sftp.close(handle, () => {});
      throw err;
    }
    await this.call<void>("close", path, (cb) => this.sftp.close(handle, cb));
    return true;
  }
}

const codeOf = (err: unknown): unknown => (err as { sftpCode?: unknown } | null)?.sftpCode;
