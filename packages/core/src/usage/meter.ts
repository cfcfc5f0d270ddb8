import { ConditionFailedError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import { cond, type Key, type Store } from "../store/store.ts";
import { monthOf, usageAttrs, usageKey } from "./entity.ts";

export interface UsageMeterOptions {
  store: Pick<Store, "update">;
  logger: Logger;
  /** Flushes on this interval (the embedded runtime); 0: only when asked. */
  flushIntervalMs?: number;
  /**
   * Starts writing as soon as a request is counted (Lambda: the handler must
   * wait for the write before it returns, so the write runs alongside the
   * rest of the request instead of after it).
   */
  flushOnCount?: boolean;
  /** UpdateItems in flight at once during a flush. */
  concurrency?: number;
}

interface Pending {
  userId: string;
  month: string;
  n: number;
}

/** A time to record on an item (`attribute = at`), unless the item is gone or holds one newer than `at - minGapMs`. */
interface Stamp {
  key: Key;
  attribute: string;
  at: number;
  minGapMs: number;
}

const CLOSE_ATTEMPTS = 5;

/**
 * The `requests` counter of `GET /api/usage`, kept off the request path:
 * `count` is synchronous and `flush` adds each user's pending requests in one
 * UpdateItem ADD per user and month. A write that fails keeps its count for
 * the next flush; `flush` never throws. Flushes run one after another, so a
 * flush that returns has written everything counted before it was called
 * (that it could write).
 */
export class UsageMeter {
  private pending = new Map<string, Pending>();
  private stamps = new Map<string, Stamp>();
  private tail: Promise<void> = Promise.resolve();
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: UsageMeterOptions) {
    const every = opts.flushIntervalMs ?? 0;
    if (every > 0) this.timer = setInterval(() => void this.flush(), every).unref();
  }

  /** Counts `n` authenticated requests of `userId`, in the month of `at`. */
  count(userId: string, n = 1, at = Date.now()): void {
    this.add({ userId, month: monthOf(at), n });
    if (this.opts.flushOnCount) void this.flush();
  }

  /**
   * Records a time on an item off the request path (an API token's
   * `lastUsedAt`), with the next flush: the latest one per item and
   * attribute, written only if the item still exists and its time is older
   * than `at - minGapMs` (so at most one write per `minGapMs`, whatever the
   * number of instances). Written, like the counts, before Lambda returns and
   * on the embedded runtime's stop.
   */
  stamp(key: Key, attribute: string, at = Date.now(), minGapMs = 0): void {
    const id = `${key.pk}\n${key.sk}\n${attribute}`;
    const current = this.stamps.get(id);
    if (!current || current.at < at) this.stamps.set(id, { key, attribute, at, minGapMs });
    if (this.opts.flushOnCount) void this.flush();
  }

  /** Stamps recorded and not yet written. */
  pendingStamps(): number {
    return this.stamps.size;
  }

  /** Requests counted and not yet written (all users, or one). */
  pendingCount(userId?: string): number {
    let total = 0;
    for (const p of this.pending.values()) if (userId === undefined || p.userId === userId) total += p.n;
    return total;
  }

  /** Writes what is pending (everyone's, or one user's) after any flush already under way. */
  flush(userId?: string): Promise<void> {
    const run = this.tail.then(() => this.drain(userId));
    this.tail = run;
    return run;
  }

  /** Stops the interval and flushes, retrying a failed write a few times; what still fails is logged as lost. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    for (let attempt = 0; attempt < CLOSE_ATTEMPTS; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
      await this.flush();
      if (this.pending.size === 0 && this.stamps.size === 0) return;
    }
    this.opts.logger.error("usage counts lost on shutdown", {
      requests: this.pendingCount(),
      ...(this.stamps.size > 0 ? { stamps: this.stamps.size } : {}),
    });
  }

  private add(p: Pending): void {
    const id = `${p.userId}\n${p.month}`;
    const current = this.pending.get(id);
    if (current) current.n += p.n;
    else this.pending.set(id, { ...p });
  }

  private async drain(userId: string | undefined): Promise<void> {
    await Promise.all([this.drainCounts(userId), userId === undefined ? this.drainStamps() : undefined]);
  }

  private async drainStamps(): Promise<void> {
    const batch = [...this.stamps.entries()];
    this.stamps.clear();
    let failed = 0;
    let error: unknown;
    await Promise.all(
      batch.map(async ([id, s]) => {
        try {
          await this.opts.store.update(s.key, {
            set: { [s.attribute]: s.at },
            condition: cond.and(
              cond.exists(),
              cond.or(cond.attrNotExists(s.attribute), cond.compare(s.attribute, "<=", s.at - s.minGapMs)),
            ),
          });
        } catch (err) {
          // The item is gone (a revoked token), or a newer time is there already: nothing to write.
          if (err instanceof ConditionFailedError) return;
          const later = this.stamps.get(id);
          if (!later || later.at < s.at) this.stamps.set(id, s);
          failed++;
          error = err;
        }
      }),
    );
    if (failed > 0) this.opts.logger.warn("stamp flush failed; kept for the next one", { stamps: failed, error });
  }

  private async drainCounts(userId: string | undefined): Promise<void> {
    const batch: Pending[] = [];
    for (const [id, p] of this.pending) {
      if (userId !== undefined && p.userId !== userId) continue;
      batch.push(p);
      this.pending.delete(id);
    }
    let failed = 0;
    let error: unknown;
    const write = async (p: Pending) => {
      try {
        await this.opts.store.update(usageKey(p.userId, p.month), {
          set: usageAttrs(p.userId, p.month),
          add: { requests: p.n },
        });
      } catch (err) {
        // Counted again at the next flush. (A write whose answer was lost may still have landed and then
        // counts twice, as with the SDK's own retries; a refused or unreachable one added nothing.)
        this.add(p);
        failed += p.n;
        error = err;
      }
    };
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < batch.length; i = next++) await write(batch[i] as Pending);
    };
    await Promise.all(Array.from({ length: Math.min(this.opts.concurrency ?? 8, batch.length) }, worker));
    if (failed > 0) this.opts.logger.warn("usage flush failed; kept for the next one", { requests: failed, error });
  }
}
