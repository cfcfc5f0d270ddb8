import type { LookupAddress } from "node:dns";
import { lookup as dnsLookup } from "node:dns/promises";
import { connect as netConnect, type Socket } from "node:net";
import { AddressGuard, type NetworkPolicy } from "./networks.ts";
import type { RemoteFile, WriteFilesOptions, WriteFilesResult } from "./remote-files.ts";
import { assertWritable, writeFilesOnLease } from "./sftp.ts";
import { type CommandSettings, type ExecOptions, type ExecResult, runCommand, STALE } from "./ssh-command.ts";
import { ConnectAttempt, type ConnectSettings, type SshTarget } from "./ssh-connection.ts";
import { SshError } from "./ssh-error.ts";
import { type Lease, SshPool } from "./ssh-pool.ts";

export { FilesExistError, type RemoteFile, type WriteFilesOptions, type WriteFilesResult } from "./remote-files.ts";
export type { ExecOptions, ExecResult, OutputStream } from "./ssh-command.ts";
export { type SshTarget, sshFingerprint } from "./ssh-connection.ts";
export { SshError, type SshErrorKind } from "./ssh-error.ts";
export { LINE_TRUNCATED_MARKER, LineSplitter } from "./ssh-lines.ts";

/**
 * The Executor port (DESIGN.md § Shape): run one script on a user's server
 * over SSH, streaming its output line by line. The same ssh2 adapter serves
 * Lambda (a connection per invocation) and the embedded runtime (warm
 * connections); tests run it against a real SSH server on loopback
 * (testing/ssh-server.ts).
 */
export interface Executor {
  exec(target: SshTarget, script: string, opts: ExecOptions): Promise<ExecResult>;
  /**
   * Writes `files` (relative paths) under `dir` over SFTP, creating the
   * directories: exact bytes, no shell. Without `force`, any file that exists
   * refuses the lot with a {@link FilesExistError} (409) and nothing is
   * written. Optional: an executor without it cannot apply app templates.
   */
  writeFiles?(target: SshTarget, dir: string, files: RemoteFile[], opts: WriteFilesOptions): Promise<WriteFilesResult>;
  /** Closes the connections it keeps open (at shutdown). */
  close?(): Promise<void>;
}

export interface Ssh2ExecutorOptions {
  /** Lines of each stream kept for the result (default 50). */
  tailLines?: number;
  /** Longer lines are cut, with {@link LINE_TRUNCATED_MARKER} (default 16 384 characters). */
  maxLineChars?: number;
  /** After TERM on timeout/abort, how long the command gets before KILL (default 3000 ms). */
  killGraceMs?: number;
  /** How long a polite disconnect may take before the socket is destroyed (default 1000 ms). */
  closeGraceMs?: number;
  /** SSH keepalives on open connections; one is dropped after `keepaliveCountMax` unanswered (default 10 000 ms × 3). */
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
  /**
   * How long a connection with no command running is kept for the next one
   * to the same target (default 0: closed with its last command, as Lambda
   * needs; the embedded runtime keeps them a minute).
   */
  idleMs?: number;
  /** Commands sharing one connection, each on its own channel; more open another connection (default 8; OpenSSH's MaxSessions is 10). */
  maxChannels?: number;
  /**
   * Networks Hoist refuses to connect to, and the exceptions (`config.ssh`
   * fits). Default: link-local and cloud metadata addresses only.
   */
  networks?: NetworkPolicy;
  /** Resolves a host name to all its addresses (tests may inject; default: the system resolver, `dns.lookup`). */
  lookup?: (host: string) => Promise<LookupAddress[]>;
  /** Opens the TCP connection to an address already resolved and checked (tests may inject). */
  connect?: (address: string, port: number) => Socket;
}

/**
 * The Executor over the `ssh2` client: host key pinned on every connection,
 * each command on its own channel of a connection shared per target (see
 * ssh-pool.ts), every connection closed in the end.
 */
export class Ssh2Executor implements Executor {
  private readonly command: CommandSettings;
  private readonly pool: SshPool;

  constructor(opts: Ssh2ExecutorOptions = {}) {
    const killGraceMs = opts.killGraceMs ?? 3000;
    const closeGraceMs = opts.closeGraceMs ?? 1000;
    this.command = { tailLines: opts.tailLines ?? 50, maxLineChars: opts.maxLineChars ?? 16_384, killGraceMs };
    const connect: ConnectSettings = {
      keepaliveIntervalMs: opts.keepaliveIntervalMs ?? 10_000,
      keepaliveCountMax: opts.keepaliveCountMax ?? 3,
      closeGraceMs,
      guard: new AddressGuard(opts.networks),
      lookup: opts.lookup ?? ((host) => dnsLookup(host, { all: true })),
      // No Nagle: a command is a few small request/reply round trips, each else held back by delayed ACKs.
      connect: opts.connect ?? ((address, port) => netConnect({ host: address, port, noDelay: true })),
    };
    this.pool = new SshPool({
      idleMs: opts.idleMs ?? 0,
      maxChannels: opts.maxChannels ?? 8,
      // Time for a cancelled command's TERM, KILL and goodbye.
      drainMs: killGraceMs + 1000 + closeGraceMs,
      open: (target) => new ConnectAttempt(connect, target),
    });
  }

  exec(target: SshTarget, script: string, opts: ExecOptions): Promise<ExecResult> {
    return this.onLease(target, opts, "start the command", (lease, _where, startedAt, reused) =>
      runCommand(lease, script, opts, this.command, startedAt, reused),
    );
  }

  async writeFiles(
    target: SshTarget,
    dir: string,
    files: RemoteFile[],
    opts: WriteFilesOptions,
  ): Promise<WriteFilesResult> {
    assertWritable(files);
    return this.onLease(target, opts, "start SFTP", (lease, where, startedAt, reused) =>
      writeFilesOnLease(lease, where, dir, files, opts, startedAt, reused),
    );
  }

  /**
   * Runs `work` on a channel of a pooled connection to `target`. When no
   * channel could be opened (the connection went stale while idle, or the
   * server wants no more sessions on it), once more on a fresh connection.
   */
  private async onLease<T>(
    target: SshTarget,
    opts: { connectTimeoutMs: number; signal?: AbortSignal },
    what: string,
    work: (lease: Lease, where: string, startedAt: number, reused: boolean) => Promise<T | typeof STALE>,
  ): Promise<T> {
    const where = `${target.host}:${target.port}`;
    if (opts.signal?.aborted) throw new SshError("aborted", `Cancelled before connecting to ${where}`);
    if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65_535)
      throw new SshError("protocol", `Invalid SSH port ${target.port} for ${target.host}`);
    const startedAt = performance.now();
    const { connectTimeoutMs, signal } = opts;
    const attempt = async (fresh: boolean) => {
      const lease = await this.pool.acquire(target, { connectTimeoutMs, signal, startedAt, fresh });
      if (signal?.aborted) {
        await lease.release();
        throw new SshError("aborted", `Cancelled while connecting to ${where}`, lease.connection.fingerprint);
      }
      return work(lease, where, startedAt, !fresh);
    };
    const outcome = await attempt(false);
    if (outcome !== STALE) return outcome;
    const retried = await attempt(true);
    if (retried === STALE) throw new SshError("protocol", `Could not ${what} on ${where}`); // a retry does not retry
    return retried;
  }

  /** Closes every connection kept open; a command still running gets a few seconds to end first. */
  close(): Promise<void> {
    return this.pool.close();
  }
}
