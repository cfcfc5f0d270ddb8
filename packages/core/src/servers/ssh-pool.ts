import { createHash } from "node:crypto";
import {
  type ConnectAttempt,
  MAX_TIMER_MS,
  PHASE_WAITING,
  type SshConnection,
  type SshTarget,
} from "./ssh-connection.ts";
import { SshError } from "./ssh-error.ts";

/**
 * Which connection a command runs on. Connections are kept per target (host,
 * port, user, a hash of the credentials and the pinned host key), so a changed
 * credential or pin never rides on a connection opened with the old one.
 *
 * - Up to `maxChannels` commands share a connection, one channel each; above
 *   that another connection to the same target is opened (never a wait: a
 *   burst costs a handshake, not a queue).
 * - Callers that find no connection wait together on one connect attempt (up
 *   to `maxChannels` of them), each with its own deadline and cancel; the
 *   attempt is abandoned when the last of them gives up.
 * - A connection that is lost (error, close, keepalives) leaves the pool at
 *   once; one with no channel is closed after `idleMs`, at once with 0 (so it
 *   never outlives its last command, as Lambda needs).
 */

export interface PoolOptions {
  idleMs: number;
  maxChannels: number;
  /** How long `close()` lets running commands end before it closes their connection under them. */
  drainMs: number;
  open: (target: SshTarget) => ConnectAttempt;
}

export interface AcquireOptions {
  connectTimeoutMs: number;
  signal?: AbortSignal;
  /** When the exec began (`performance.now()`): the connect timeout counts from there. */
  startedAt: number;
  /** Skip the connections already open (a channel could not be opened on one of them). */
  fresh?: boolean;
}

/** One channel's claim on a connection. */
export interface Lease {
  readonly connection: SshConnection;
  /** Gives the claim back (`retire`: no new command on this connection); resolves once the connection is closed if this closes it. */
  release(retire?: boolean): Promise<void>;
}

interface Pooled {
  key: string;
  connection: SshConnection;
  channels: number;
  idleTimer?: NodeJS.Timeout;
}

interface Waiter {
  take(pooled: Pooled): void;
  fail(error: unknown): void;
}

interface Pending {
  key: string;
  attempt: ConnectAttempt;
  waiters: Set<Waiter>;
}

/** The pool's key for a target: credentials are hashed, so the key holds none. */
export function poolKey(target: SshTarget): string {
  const secrets = createHash("sha256")
    .update(JSON.stringify([target.privateKey ?? null, target.passphrase ?? null, target.password ?? null]))
    .digest("base64url");
  return JSON.stringify([target.host, target.port, target.username, secrets, target.hostKeyFingerprint]);
}

export class SshPool {
  /** Connections that take new channels, by key. */
  private readonly ready = new Map<string, Set<Pooled>>();
  private readonly pending = new Map<string, Set<Pending>>();
  /** Every connection not yet closed, in the pool or retired. */
  private readonly live = new Set<Pooled>();
  private closed = false;

  constructor(private readonly opts: PoolOptions) {}

  acquire(target: SshTarget, opts: AcquireOptions): Promise<Lease> {
    const key = poolKey(target);
    const max = this.opts.maxChannels;
    if (!opts.fresh) {
      const open = [...(this.ready.get(key) ?? [])].find((p) => p.channels < max && !p.connection.lost);
      if (open) return Promise.resolve(this.lease(open));
    }
    const joinable = [...(this.pending.get(key) ?? [])].find((p) => p.waiters.size < max);
    return this.wait(joinable ?? this.start(key, target), target, opts);
  }

  /**
   * Stops keeping connections: the idle ones close at once, the busy ones
   * when their last command ends, or after `drainMs` under it. Resolves once
   * all are closed. Commands started later still run, on connections closed
   * after them.
   */
  async close(): Promise<void> {
    this.closed = true;
    const waits: Promise<unknown>[] = [];
    for (const set of this.pending.values())
      for (const { attempt } of set)
        waits.push(
          attempt.ready.then(
            (c) => c.closed,
            () => {},
          ),
        );
    for (const pooled of this.live) {
      waits.push(pooled.connection.closed);
      if (pooled.channels === 0) void this.shut(pooled);
      else this.retire(pooled);
    }
    const force = setTimeout(() => {
      for (const pooled of this.live) void this.shut(pooled);
      for (const set of this.pending.values()) for (const { attempt } of set) void attempt.cancel();
    }, this.opts.drainMs);
    await Promise.all(waits);
    clearTimeout(force);
  }

  private start(key: string, target: SshTarget): Pending {
    const pending: Pending = { key, attempt: this.opts.open(target), waiters: new Set() };
    addTo(this.pending, key, pending);
    pending.attempt.ready.then(
      (connection) => {
        removeFrom(this.pending, key, pending);
        if (pending.waiters.size === 0) return; // all gave up: cancel() closes it
        const pooled = this.adopt(key, connection);
        for (const waiter of [...pending.waiters]) waiter.take(pooled);
      },
      (error: unknown) => {
        removeFrom(this.pending, key, pending);
        for (const waiter of [...pending.waiters]) waiter.fail(error);
      },
    );
    return pending;
  }

  /** Waits for the attempt, within this caller's connect timeout and cancellable by its signal. */
  private wait(pending: Pending, target: SshTarget, opts: AcquireOptions): Promise<Lease> {
    const where = `${target.host}:${target.port}`;
    const { attempt } = pending;
    return new Promise<Lease>((resolve, reject) => {
      const waiter: Waiter = {
        take: (pooled) => {
          cleanup();
          resolve(this.lease(pooled));
        },
        fail: (error) => {
          cleanup();
          reject(error);
        },
      };
      const giveUp = (error: SshError) => {
        cleanup();
        if (pending.waiters.size > 0) return reject(error);
        removeFrom(this.pending, pending.key, pending);
        void attempt.cancel().then(() => reject(error));
      };
      const remaining = opts.connectTimeoutMs - (performance.now() - opts.startedAt);
      const timer = setTimeout(
        () =>
          giveUp(
            new SshError(
              "timeout",
              `Timed out connecting to ${where} after ${opts.connectTimeoutMs} ms (${PHASE_WAITING[attempt.phase]})`,
              attempt.fingerprint,
            ),
          ),
        Math.min(Math.max(0, remaining), MAX_TIMER_MS),
      );
      const onAbort = () =>
        giveUp(new SshError("aborted", `Cancelled while connecting to ${where}`, attempt.fingerprint));
      const cleanup = () => {
        clearTimeout(timer);
        opts.signal?.removeEventListener("abort", onAbort);
        pending.waiters.delete(waiter);
      };
      pending.waiters.add(waiter);
      if (opts.signal?.aborted) return onAbort();
      opts.signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  private adopt(key: string, connection: SshConnection): Pooled {
    const pooled: Pooled = { key, connection, channels: 0 };
    this.live.add(pooled);
    addTo(this.ready, key, pooled);
    // The commands on it hear of the loss from the connection itself.
    connection.onLost(() => (pooled.channels === 0 ? void this.shut(pooled) : this.retire(pooled)));
    void connection.closed.then(() => {
      this.retire(pooled);
      this.live.delete(pooled);
    });
    return pooled;
  }

  private lease(pooled: Pooled): Lease {
    pooled.channels++;
    clearTimeout(pooled.idleTimer);
    let released = false;
    return {
      connection: pooled.connection,
      release: (retire = false) => {
        if (released) return Promise.resolve();
        released = true;
        pooled.channels--;
        if (retire) this.retire(pooled);
        return this.idle(pooled);
      },
    };
  }

  /** After a channel ends: close the connection now, later (idle timer) or not at all (still busy). */
  private idle(pooled: Pooled): Promise<void> {
    if (pooled.channels > 0) return Promise.resolve();
    const keep = this.opts.idleMs > 0 && !this.closed && this.ready.get(pooled.key)?.has(pooled);
    if (!keep) return this.shut(pooled);
    clearTimeout(pooled.idleTimer);
    pooled.idleTimer = setTimeout(() => void this.shut(pooled), Math.min(this.opts.idleMs, MAX_TIMER_MS));
    pooled.idleTimer.unref();
    return Promise.resolve();
  }

  /** No new channel on this connection; it closes when its last one ends. */
  private retire(pooled: Pooled): void {
    removeFrom(this.ready, pooled.key, pooled);
  }

  private shut(pooled: Pooled): Promise<void> {
    this.retire(pooled);
    clearTimeout(pooled.idleTimer);
    return pooled.connection.close();
  }
}

function addTo<T>(map: Map<string, Set<T>>, key: string, value: T): void {
  const set = map.get(key);
  if (set) set.add(value);
  else map.set(key, new Set([value]));
}

function removeFrom<T>(map: Map<string, Set<T>>, key: string, value: T): void {
  const set = map.get(key);
  if (!set?.delete(value)) return;
  if (set.size === 0) map.delete(key);
}
