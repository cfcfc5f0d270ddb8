import { createHash } from "node:crypto";
import type { LookupAddress } from "node:dns";
import { isIP, type Socket } from "node:net";
import ssh2, { type ClientChannel, type ConnectConfig, type SFTPWrapper } from "ssh2";
import type { AddressGuard } from "./networks.ts";
import { authMethods, type Credentials, loadPrivateKey, triedMethods } from "./ssh-auth.ts";
import { DNS_CODES, SshError, type SshErrorContext, toSshError } from "./ssh-error.ts";

/**
 * One SSH connection to a user's server: DNS and the network policy, TCP,
 * the handshake with the host key pinned, authentication. ssh-pool.ts decides
 * which connection a command runs on; ssh-command.ts runs it on a channel.
 */

export interface SshTarget {
  host: string;
  port: number;
  username: string;
  privateKey?: string;
  passphrase?: string;
  password?: string;
  /** The pinned host key (`SHA256:…`); null accepts any key and reports it so the caller can pin it. */
  hostKeyFingerprint: string | null;
}

/** OpenSSH's fingerprint of a raw host key blob: `SHA256:` and unpadded base64. */
export function sshFingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash("sha256").update(keyBlob).digest("base64").replace(/=+$/, "")}`;
}

function sameFingerprint(a: string, b: string): boolean {
  return a.trim().replace(/=+$/, "") === b.trim().replace(/=+$/, "");
}

export type Phase = "dns" | "tcp" | "handshake" | "auth" | "exec";

export const PHASE_WAITING: Record<Phase, string> = {
  dns: "waiting for DNS",
  tcp: "waiting for the TCP connection",
  handshake: "waiting for the SSH handshake",
  auth: "waiting for authentication",
  exec: "running the command",
};

/** setTimeout fires at once beyond this (2^31 - 1 ms, about 24.8 days). */
export const MAX_TIMER_MS = 2_147_483_647;

export interface ConnectSettings {
  keepaliveIntervalMs: number;
  keepaliveCountMax: number;
  /** How long a polite disconnect may take before the socket is destroyed. */
  closeGraceMs: number;
  guard: AddressGuard;
  lookup: (host: string) => Promise<LookupAddress[]>;
  connect: (address: string, port: number) => Socket;
}

/**
 * Connecting to one target. Nobody's timeout or cancel is built in: the pool
 * lets several callers wait on one attempt, each with its own deadline, and
 * cancels it when the last one gives up.
 */
export class ConnectAttempt {
  /** How far it got (for a timeout's message). */
  phase: Phase = "dns";
  /** The server's host key, once the handshake showed it. */
  fingerprint: string | null = null;
  /** The connection, once authenticated; rejects with an {@link SshError}. */
  readonly ready: Promise<SshConnection>;
  private readonly where: string;
  private readonly cancelled = new AbortController();

  constructor(
    private readonly settings: ConnectSettings,
    private readonly target: SshTarget,
  ) {
    this.where = `${target.host}:${target.port}`;
    this.ready = this.run();
    this.ready.catch(() => {}); // its waiters see the error; a cancelled attempt's is nobody's
  }

  /** Gives up; resolves once this attempt has no socket left open (a connection that got ready meanwhile is closed). */
  async cancel(): Promise<void> {
    this.cancelled.abort();
    const connection = await this.ready.catch(() => undefined);
    await connection?.close();
  }

  private cancelError(): SshError {
    return new SshError("aborted", `Cancelled while connecting to ${this.where}`, this.fingerprint);
  }

  private async run(): Promise<SshConnection> {
    const { target } = this;
    const credentials: Credentials = {
      username: target.username,
      privateKey: target.privateKey === undefined ? undefined : loadPrivateKey(target.privateKey, target.passphrase),
      password: target.password,
    };
    const address = await this.resolve();
    return this.handshake(address, credentials);
  }

  /**
   * The address to connect to. A name is resolved here, once, and every
   * address it has is checked against the network policy (one denied address
   * refuses the lot, so a name cannot mix a decoy with a target); the
   * connection then goes to the checked address, never to the name again, so
   * DNS has no second chance to answer differently (rebinding). The first
   * address in the resolver's order is used (no fallback to the others).
   */
  private async resolve(): Promise<string> {
    const { host } = this.target;
    const family = isIP(host);
    const literal = family !== 0;
    const addresses = literal ? [{ address: host, family }] : await this.lookup();
    for (const { address } of addresses) {
      const cidr = this.settings.guard.deniedBy(address);
      if (!cidr) continue;
      const what = literal ? `${address} is` : `${host} resolves to ${address},`;
      throw new SshError(
        "denied",
        `${what} in a network Hoist does not connect to (${cidr}, HOIST_SSH_DENY_NETWORKS; HOIST_SSH_ALLOW_NETWORKS makes exceptions)`,
      );
    }
    const first = addresses[0];
    if (!first) throw new SshError("dns", `DNS lookup failed for ${host} (no addresses)`);
    return first.address;
  }

  /** The lookup, cancellable (a lookup itself cannot be stopped: its answer is then ignored). */
  private lookup(): Promise<LookupAddress[]> {
    const { host } = this.target;
    const signal = this.cancelled.signal;
    return new Promise((resolve, reject) => {
      const onCancel = () => reject(this.cancelError());
      signal.addEventListener("abort", onCancel, { once: true });
      this.settings.lookup(host).then(
        (addresses) => {
          signal.removeEventListener("abort", onCancel);
          resolve(addresses);
        },
        (err: Error & { code?: string }) => {
          signal.removeEventListener("abort", onCancel);
          const code = err.code ?? "";
          reject(
            new SshError(
              "dns",
              `DNS lookup failed for ${host}${DNS_CODES.has(code) ? "" : ` (${code || err.message})`}`,
            ),
          );
        },
      );
    });
  }

  private handshake(address: string, credentials: Credentials): Promise<SshConnection> {
    const { target, settings, where } = this;
    const signal = this.cancelled.signal;
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(this.cancelError());
      this.phase = "tcp";
      let mismatch = false;
      let settled = false;
      let socketClosed = false;
      let onSocketClosed: (() => void) | undefined;
      const socket = settings.connect(address, target.port);
      const client = new ssh2.Client();
      socket.on("connect", () => {
        if (this.phase === "tcp") this.phase = "handshake";
      });
      socket.on("close", () => {
        socketClosed = true;
        onSocketClosed?.();
      });

      /** Before the connection is ready there is nobody to be polite to: destroy it, fail once the socket is closed. */
      const fail = (error: SshError) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener("abort", onCancel);
        const settle = () => {
          clearTimeout(destroyTimer);
          reject(error);
        };
        const destroyTimer = setTimeout(settle, settings.closeGraceMs);
        if (socketClosed) return settle();
        onSocketClosed = settle;
        socket.destroy();
      };
      const onCancel = () => fail(this.cancelError());
      signal.addEventListener("abort", onCancel, { once: true });

      client.on("handshake", () => {
        this.phase = "auth";
      });
      client.on("error", (err: Error & { level?: string; code?: string }) =>
        fail(toSshError(err, errorContext(target, credentials, this.phase, this.fingerprint, mismatch))),
      );
      client.on("close", () =>
        fail(
          new SshError(
            "protocol",
            `The connection to ${where} closed unexpectedly (${PHASE_WAITING[this.phase]})`,
            this.fingerprint,
          ),
        ),
      );
      client.on("ready", () => {
        if (settled) return;
        settled = true;
        signal.removeEventListener("abort", onCancel);
        this.phase = "exec";
        const context = errorContext(target, credentials, "exec", this.fingerprint, false);
        resolve(new SshConnection(client, socket, context, settings.closeGraceMs));
      });

      const config: ConnectConfig = {
        sock: socket,
        username: target.username,
        authHandler: authMethods(credentials),
        readyTimeout: 0, // the callers' connect timeouts cover DNS + TCP + handshake + auth
        keepaliveInterval: settings.keepaliveIntervalMs,
        keepaliveCountMax: settings.keepaliveCountMax,
        hostVerifier: (key: Buffer) => {
          this.fingerprint = sshFingerprint(key);
          const pinned = target.hostKeyFingerprint;
          mismatch = pinned !== null && !sameFingerprint(pinned, this.fingerprint);
          return !mismatch;
        },
      };
      try {
        client.connect(config);
      } catch (err) {
        fail(new SshError("protocol", `Could not start the SSH connection: ${(err as Error).message}`));
      }
    });
  }
}

/**
 * A ready (authenticated) connection. Commands run on it as channels; it
 * reports once that it is gone (error, close, keepalives unanswered).
 */
export class SshConnection {
  /** Why the connection is gone, once it is. */
  lost: SshError | null = null;
  /** Resolves once the socket is closed. */
  readonly closed: Promise<void>;
  /** The server's host key (`SHA256:…`). */
  readonly fingerprint: string;
  private readonly listeners = new Set<(error: SshError) => void>();
  private ending = false;

  constructor(
    private readonly client: ssh2.Client,
    private readonly socket: Socket,
    /** How to describe its errors (it is ready: the phase is `exec`). */
    context: SshErrorContext,
    private readonly closeGraceMs: number,
  ) {
    this.fingerprint = context.fingerprint ?? "";
    this.closed = new Promise((resolve) => {
      if (socket.destroyed) resolve();
      else socket.once("close", () => resolve());
    });
    client.on("error", (err: Error & { level?: string; code?: string }) => this.lose(toSshError(err, context)));
    client.on("close", () =>
      this.lose(
        new SshError(
          "protocol",
          `The connection to ${context.host}:${context.port} closed unexpectedly (${context.waiting})`,
          this.fingerprint,
        ),
      ),
    );
  }

  /** Calls `listener` when the connection is lost; returns the way to stop listening. */
  onLost(listener: (error: SshError) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Opens a session channel running `script`; the callback gets ssh2's error as is (the caller judges it).
   * A callback, not a promise: the channel's events (exit status, close) may follow in the same tick.
   */
  exec(script: string, callback: (err: Error | undefined, channel?: ClientChannel) => void): void {
    try {
      this.client.exec(script, (err, channel) => callback(err, channel));
    } catch (err) {
      process.nextTick(() => callback(err as Error)); // "Not connected"
    }
  }

  /** Opens an SFTP session (a channel with the `sftp` subsystem); the callback gets ssh2's error as is, as for exec. */
  sftp(callback: (err: Error | undefined, sftp?: SFTPWrapper) => void): void {
    try {
      this.client.sftp((err, sftp) => callback(err, sftp));
    } catch (err) {
      process.nextTick(() => callback(err as Error)); // "Not connected"
    }
  }

  /** Says goodbye (the server then closes), destroys the socket if that stalls; resolves once it is closed. */
  close(): Promise<void> {
    if (!this.ending) {
      this.ending = true;
      const destroyTimer = setTimeout(() => this.socket.destroy(), this.closeGraceMs);
      void this.closed.then(() => clearTimeout(destroyTimer));
      try {
        this.client.end();
      } catch {
        this.socket.destroy();
      }
    }
    return this.closed;
  }

  private lose(error: SshError): void {
    if (this.lost) return;
    this.lost = error;
    for (const listener of [...this.listeners]) listener(error);
  }
}

function errorContext(
  target: SshTarget,
  credentials: Credentials,
  phase: Phase,
  fingerprint: string | null,
  mismatch: boolean,
): SshErrorContext {
  const { host, port, username, hostKeyFingerprint: pinned } = target;
  const tried = triedMethods(credentials);
  return { host, port, username, pinned, waiting: PHASE_WAITING[phase], fingerprint, mismatch, tried };
}
