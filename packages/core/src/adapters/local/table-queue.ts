import { ConditionFailedError, ValidationError } from "../../errors.ts";
import { newId, newToken } from "../../ids.ts";
import { createLogger, type Logger } from "../../logger.ts";
import { type Job, type JobQueue, JobSchema } from "../../ports.ts";
import { cond, type Key, queryAll, type Store, type TransactOp } from "../../store/store.ts";

/**
 * The JobQueue port embedded: durable jobs in the single table, polled
 * in-process, with SQS's semantics (at-least-once, visibility timeout kept
 * alive by heartbeats, retries with backoff, a dead-letter index, redrive).
 *
 * One item per job, `pk QUEUE#<name>`, `sk JOB#<id>`. The ready index
 * (`gsi1pk QUEUE#<name>#READY`, `gsi1sk <visibleAt ms, 13 digits>#<id>`) holds
 * waiting *and* leased jobs: a claim moves `visibleAt` to the end of the lease,
 * so a job whose consumer died reappears by itself. Dead jobs move to
 * `gsi1pk QUEUE#<name>#DEAD`. Every state change writes a fresh `receipt`, and
 * every write after a read is conditional on the receipt it saw, so two
 * consumers never both own one delivery and a stale owner cannot ack.
 */

export interface QueueMessage {
  id: string;
  body: string;
  /** 1 on first delivery. */
  attempt: number;
  /** Aborted when this delivery's lease is lost or the queue abandons it on `stop`. */
  signal: AbortSignal;
}

/** Thrown by a consumer for a job that can never succeed (e.g. a malformed body): dead-lettered at once. */
export class PermanentJobError extends Error {
  override name = "PermanentJobError";
}

export type Consume = (msg: QueueMessage) => Promise<void>;

export interface TableQueueOptions {
  store: Store;
  /** Letters, digits and `-`; part of the keys. */
  name: string;
  /** Deliveries before a failing job is dead-lettered (SQS maxReceiveCount). */
  maxAttempts: number;
  /** Lease per claim; renewed every third of it while the consumer runs. */
  visibilitySeconds: number;
  /** Shortest idle poll interval (default 100 ms); idle polling doubles up to `maxPollIntervalMs` (default 1 s). */
  pollIntervalMs?: number;
  maxPollIntervalMs?: number;
  /** Jobs run at once by this instance (default 4). */
  concurrency?: number;
  /** Retry delay after failed attempt n: min(maxMs, baseMs·2^(n-1)), with half of it jittered. Default 1 s … 5 min. */
  backoff?: { baseMs?: number; maxMs?: number };
  logger?: Logger;
  /**
   * On `start`, make every job leased by another queue instance visible at
   * once instead of after its lease. Only for a consumer that knows it is the
   * only one alive on this table (the embedded runtime, which holds its data
   * directory's lock): the leases it finds were left by a process that died.
   */
  reclaimOnStart?: boolean;
}

export type QueueJobItem = Key & {
  entity: "queue-job";
  gsi1pk: string;
  gsi1sk: string;
  queue: string;
  id: string;
  body: string;
  attempts: number;
  /** Epoch ms: when the job may next be claimed (the lease end while it runs). */
  visibleAt: number;
  receipt: string;
  /** The queue instance holding the current lease (each process start is a new one). */
  leasedBy?: string;
  enqueuedAt: string;
  lastError?: string;
  deadAt?: string;
};

export interface DeadLetter {
  id: string;
  body: string;
  attempts: number;
  lastError: string | undefined;
  enqueuedAt: string;
  deadAt: string | undefined;
}

/** SQS's limits, kept locally so both adapters accept the same jobs. */
const MAX_DELAY_SECONDS = 900;
const MAX_BODY_BYTES = 256 * 1024;

/** The queue-job entity: the only place its keys are built. */
export const queueJobKeys = {
  key: (queue: string, id: string): Key => ({ pk: `QUEUE#${queue}`, sk: `JOB#${id}` }),
  ready: (queue: string) => `QUEUE#${queue}#READY`,
  dead: (queue: string) => `QUEUE#${queue}#DEAD`,
  /** Sorts by time; 13 digits hold epoch ms until the year 2286. */
  at: (ms: number, id: string) => `${String(Math.max(0, Math.floor(ms))).padStart(13, "0")}#${id}`,
};

/**
 * In-process hand-off to the consumers of a queue in this process:
 * - a job sent due now is offered to one with room, which claims it at once (no Query of the ready index);
 * - a job written in a caller's transaction (`sendWith`) reserves a slot of one with room first and is
 *   written already leased to it, so once committed it runs with no claim at all;
 * - any other send, or an offer no one takes, wakes them all to poll.
 */
interface Consumer {
  wake(): void;
  offer(item: QueueJobItem): boolean;
  /** A slot for a job about to be written leased to this consumer; undefined when it has no room. */
  reserve(now: number): Reservation | undefined;
}
interface Reservation {
  /** The lease fields the job is written with. */
  lease(id: string): Pick<QueueJobItem, "visibleAt" | "gsi1sk" | "leasedBy" | "attempts">;
  /** The write committed: run it. */
  take(item: QueueJobItem): void;
  /** The write did not happen: give the slot back. */
  release(): void;
}
/** By store (one per table in a process; two runtimes in one process never hand each other jobs), then queue name. */
const registry = new WeakMap<Store, Map<string, Set<Consumer>>>();
const consumersOf = (store: Store, queue: string): Set<Consumer> => {
  const byName = registry.get(store) ?? new Map<string, Set<Consumer>>();
  registry.set(store, byName);
  const set = byName.get(queue) ?? new Set<Consumer>();
  byName.set(queue, set);
  return set;
};

interface Delivery {
  item: QueueJobItem;
  controller: AbortController;
  timer: ReturnType<typeof setInterval> | undefined;
  heartbeat: Promise<void> | undefined;
  abandoned: boolean;
  done: Promise<void>;
}

export class TableQueue implements JobQueue {
  readonly name: string;
  private readonly store: Store;
  private readonly logger: Logger;
  private readonly maxAttempts: number;
  private readonly visibilityMs: number;
  private readonly minPollMs: number;
  private readonly maxPollMs: number;
  private readonly concurrency: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly reclaimOnStart: boolean;
  /** This instance's id on the leases it takes. */
  private readonly bootId = newToken();

  private running = false;
  private woken = false;
  private loop: Promise<void> | undefined;
  private consume: Consume | undefined;
  private readonly sleepers = new Set<() => void>();
  private readonly inFlight = new Map<string, Delivery>();
  /** Claims of offered jobs under way (they count against `concurrency`; `stop` waits for them). */
  private readonly claiming = new Set<Promise<void>>();
  /** Slots promised to jobs being written leased to this instance (they count against `concurrency`). */
  private reserved = 0;
  private readonly wake = () => {
    this.woken = true;
    for (const resolve of [...this.sleepers]) resolve();
  };
  private readonly busy = () => this.inFlight.size + this.claiming.size + this.reserved;
  private readonly consumer: Consumer = {
    wake: this.wake,
    offer: (offered) => {
      if (!this.running || this.busy() >= this.concurrency) return false;
      const claiming: Promise<void> = this.claim(offered, Date.now())
        .then(
          (claimed) => (claimed ? this.deliver(claimed) : this.wake()), // lost: the poll looks
          (err: unknown) => {
            this.logger.error("queue claim failed; retrying", { queue: this.name, err });
            this.wake();
          },
        )
        .finally(() => this.claiming.delete(claiming));
      this.claiming.add(claiming);
      return true;
    },
    reserve: (now) => {
      if (!this.running || this.busy() >= this.concurrency) return undefined;
      this.reserved++;
      let open = true;
      const settle = () => {
        if (!open) return false;
        open = false;
        this.reserved--;
        return true;
      };
      const visibleAt = now + this.visibilityMs;
      return {
        lease: (id) => ({ visibleAt, gsi1sk: queueJobKeys.at(visibleAt, id), leasedBy: this.bootId, attempts: 1 }),
        // Stopped meanwhile: the lease lapses and the job is redelivered (at once by the next start, which reclaims).
        take: (item) => settle() && this.running && this.deliver(item),
        release: () => settle() && this.wake(),
      };
    },
  };

  constructor(opts: TableQueueOptions) {
    if (!/^[A-Za-z0-9-]{1,64}$/.test(opts.name)) throw new Error(`Invalid queue name ${JSON.stringify(opts.name)}`);
    if (!(opts.maxAttempts >= 1)) throw new Error("maxAttempts must be at least 1");
    if (!(opts.visibilitySeconds > 0)) throw new Error("visibilitySeconds must be positive");
    this.store = opts.store;
    this.name = opts.name;
    this.logger = opts.logger ?? createLogger();
    this.maxAttempts = opts.maxAttempts;
    this.visibilityMs = opts.visibilitySeconds * 1000;
    this.minPollMs = opts.pollIntervalMs ?? 100;
    this.maxPollMs = Math.max(this.minPollMs, opts.maxPollIntervalMs ?? 1000);
    this.concurrency = Math.max(1, opts.concurrency ?? 4);
    this.backoffBaseMs = opts.backoff?.baseMs ?? 1000;
    this.backoffMaxMs = opts.backoff?.maxMs ?? 300_000;
    this.reclaimOnStart = opts.reclaimOnStart ?? false;
  }

  /** The JobQueue port: a new job with a fresh id. `delaySeconds` is capped at 900, as on SQS. */
  async send(job: Job, opts: { delaySeconds?: number } = {}): Promise<void> {
    await this.sendRaw(undefined, JSON.stringify(JobSchema.parse(job)), {
      delaySeconds: Math.min(opts.delaySeconds ?? 0, MAX_DELAY_SECONDS),
    });
  }

  /**
   * The JobQueue port: the job as a write in the caller's transaction. When a
   * consumer here has room the job is written leased to it, and `committed()`
   * runs it at once; otherwise `committed()` announces it like a send.
   * `failed()` when the transaction did not commit.
   */
  sendWith(job: Job): { op: TransactOp; committed(): void; failed(): void } {
    const item = this.jobItem(undefined, JSON.stringify(JobSchema.parse(job)), {});
    const slot = reserveOne(consumersOf(this.store, this.name), Date.now());
    if (slot) Object.assign(item, slot.lease(item.id));
    return {
      op: { put: item, condition: cond.notExists() },
      committed: () => (slot ? slot.take(item) : this.announce(item)),
      failed: () => slot?.release(),
    };
  }

  /**
   * Writes a job with any body. With an `id`, an existing job of that id is
   * replaced (attempts reset, a running delivery of it loses its lease), which
   * is how the scheduler moves a schedule. `visibleAt` (a time) wins over `delaySeconds`.
   */
  async sendRaw(
    id: string | undefined,
    body: string,
    opts: { delaySeconds?: number; visibleAt?: Date } = {},
  ): Promise<string> {
    const item = this.jobItem(id, body, opts);
    await this.store.put(item);
    this.announce(item);
    return item.id;
  }

  private jobItem(id: string | undefined, body: string, opts: { delaySeconds?: number; visibleAt?: Date }) {
    const jobId = id ?? newId("job");
    if (jobId.length === 0 || jobId.length > 512) throw new ValidationError("Job id must be 1 to 512 characters");
    if (Buffer.byteLength(body) > MAX_BODY_BYTES) throw new ValidationError("Job body is larger than 256 KiB");
    const now = Date.now();
    const visibleAt = opts.visibleAt ? opts.visibleAt.getTime() : now + Math.max(0, opts.delaySeconds ?? 0) * 1000;
    if (!Number.isFinite(visibleAt)) throw new ValidationError("Invalid job time");
    const item: QueueJobItem = {
      ...queueJobKeys.key(this.name, jobId),
      entity: "queue-job",
      gsi1pk: queueJobKeys.ready(this.name),
      gsi1sk: queueJobKeys.at(visibleAt, jobId),
      queue: this.name,
      id: jobId,
      body,
      attempts: 0,
      visibleAt,
      receipt: newToken(),
      enqueuedAt: new Date(now).toISOString(),
    };
    return item;
  }

  /** A job just written: handed to a consumer here if it is due and one has room, else every consumer is woken. */
  private announce(item: QueueJobItem): void {
    if (item.visibleAt > Date.now() || !offerOne(consumersOf(this.store, this.name), item))
      wakeAll(consumersOf(this.store, this.name));
  }

  /** Deletes a job wherever it is (waiting, running or dead). Returns whether there was one. */
  async delete(id: string): Promise<boolean> {
    return (await this.store.delete(queueJobKeys.key(this.name, id))) !== undefined;
  }

  /** Dead jobs, oldest first (a Query of the DEAD index). */
  async deadLetters(limit = 100): Promise<DeadLetter[]> {
    const page = await this.store.query<QueueJobItem>({ index: "gsi1", pk: queueJobKeys.dead(this.name), limit });
    return page.items.map((i) => ({
      id: i.id,
      body: i.body,
      attempts: i.attempts,
      lastError: i.lastError,
      enqueuedAt: i.enqueuedAt,
      deadAt: i.deadAt,
    }));
  }

  /** Moves a dead job back to the ready index with its attempts reset. False if it is not dead. */
  async redrive(id: string): Promise<boolean> {
    const now = Date.now();
    try {
      await this.store.update(queueJobKeys.key(this.name, id), {
        set: {
          gsi1pk: queueJobKeys.ready(this.name),
          gsi1sk: queueJobKeys.at(now, id),
          visibleAt: now,
          attempts: 0,
          receipt: newToken(),
        },
        remove: ["deadAt"],
        condition: cond.eq("gsi1pk", queueJobKeys.dead(this.name)),
      });
    } catch (err) {
      if (err instanceof ConditionFailedError) return false;
      throw err;
    }
    wakeAll(consumersOf(this.store, this.name));
    return true;
  }

  /**
   * Starts polling and running jobs with `consume`. Errors from `consume` are
   * retried, never thrown. With `reclaimOnStart`, jobs leased by an earlier
   * instance are made visible first; resolves once that is done.
   */
  async start(consume: Consume): Promise<void> {
    if (this.running) throw new Error(`Queue ${this.name} is already started`);
    if (this.reclaimOnStart) await this.reclaim();
    this.running = true;
    this.consume = consume;
    consumersOf(this.store, this.name).add(this.consumer);
    this.loop = this.pollLoop();
  }

  /** Jobs whose lease another (dead) instance holds become due now; answers how many. */
  async reclaim(): Promise<number> {
    const now = Date.now();
    const leased = await queryAll<QueueJobItem>(this.store, {
      index: "gsi1",
      pk: queueJobKeys.ready(this.name),
      sk: { gt: queueJobKeys.at(now, "") },
    });
    let reclaimed = 0;
    for (const item of leased) {
      if (!item.leasedBy || item.leasedBy === this.bootId) continue; // a delayed job, or ours
      try {
        await this.store.update(queueJobKeys.key(this.name, item.id), {
          set: { visibleAt: now, gsi1sk: queueJobKeys.at(now, item.id), receipt: newToken() },
          remove: ["leasedBy"],
          condition: cond.eq("receipt", item.receipt),
        });
        reclaimed++;
      } catch (err) {
        if (!(err instanceof ConditionFailedError)) throw err;
      }
    }
    if (reclaimed > 0)
      this.logger.info("queue jobs of a stopped process made visible again", { queue: this.name, reclaimed });
    return reclaimed;
  }

  /**
   * Stops claiming, then waits up to `graceMs` (default 30 s) for running jobs
   * to finish; their leases keep being renewed meanwhile. Jobs still running
   * after that are abandoned exactly as a crash would: their signal aborts,
   * heartbeats stop, their late outcome is ignored, and they are redelivered
   * once their lease ends. When `stop` resolves this instance writes nothing more.
   */
  async stop(opts: { graceMs?: number } = {}): Promise<void> {
    if (!this.running) return;
    this.running = false;
    consumersOf(this.store, this.name).delete(this.consumer);
    this.wake();
    await this.loop;
    await Promise.all(this.claiming);
    const graceMs = opts.graceMs ?? 30_000;
    const pending = [...this.inFlight.values()];
    if (pending.length > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.allSettled(pending.map((d) => d.done)),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, graceMs);
        }),
      ]);
      clearTimeout(timer);
    }
    const abandoned = [...this.inFlight.values()];
    for (const d of abandoned) {
      d.abandoned = true;
      clearInterval(d.timer);
      d.controller.abort(new Error(`Queue ${this.name} stopped`));
      this.logger.warn("queue job abandoned on stop; it will be redelivered", { queue: this.name, jobId: d.item.id });
    }
    await Promise.allSettled(abandoned.map((d) => d.heartbeat));
    this.inFlight.clear();
  }

  private async pollLoop(): Promise<void> {
    let idleMs = this.minPollMs;
    while (this.running) {
      const free = this.concurrency - this.busy();
      this.woken = false;
      if (free <= 0) {
        await this.sleep(this.maxPollMs); // a finishing job wakes us
        continue;
      }
      let waitMs: number;
      try {
        const { claimed, lost, nextAt } = await this.pollOnce(free);
        if (claimed > 0) {
          idleMs = this.minPollMs;
          continue;
        }
        // Lost races: someone else is taking jobs, look again soon. Otherwise
        // sleep until the next job is due, at most the (growing) idle interval.
        waitMs = lost > 0 ? this.minPollMs : Math.min(idleMs, nextAt === undefined ? idleMs : nextAt - Date.now());
        idleMs = Math.min(idleMs * 2, this.maxPollMs);
      } catch (err) {
        this.logger.error("queue poll failed; retrying", { queue: this.name, err });
        waitMs = this.maxPollMs;
      }
      if (!this.woken && this.running) await this.sleep(Math.max(0, waitMs));
    }
  }

  /** One Query of the ready index (due jobs sort first), then a conditional claim of each due one. */
  private async pollOnce(free: number): Promise<{ claimed: number; lost: number; nextAt: number | undefined }> {
    const now = Date.now();
    const page = await this.store.query<QueueJobItem>({
      index: "gsi1",
      pk: queueJobKeys.ready(this.name),
      limit: free,
    });
    const due = page.items.filter((i) => i.visibleAt <= now);
    const nextAt = page.items.find((i) => i.visibleAt > now)?.visibleAt;
    const claims = await Promise.allSettled(due.map((item) => this.claim(item, now)));
    let claimed = 0;
    let lost = 0;
    for (const claim of claims) {
      if (claim.status === "rejected") {
        this.logger.error("queue claim failed; retrying", { queue: this.name, err: claim.reason });
      } else if (claim.value) {
        claimed++; // delivered even if stop() was just called: stop waits for it like any running job
        this.deliver(claim.value);
      } else {
        lost++;
      }
    }
    return { claimed, lost, nextAt };
  }

  private async claim(seen: QueueJobItem, now: number): Promise<QueueJobItem | undefined> {
    const visibleAt = now + this.visibilityMs;
    try {
      return await this.store.update<QueueJobItem>(queueJobKeys.key(this.name, seen.id), {
        set: { receipt: newToken(), visibleAt, gsi1sk: queueJobKeys.at(visibleAt, seen.id), leasedBy: this.bootId },
        add: { attempts: 1 },
        condition: cond.and(
          cond.eq("receipt", seen.receipt),
          cond.eq("gsi1pk", queueJobKeys.ready(this.name)),
          cond.compare("visibleAt", "<=", now),
        ),
      });
    } catch (err) {
      if (err instanceof ConditionFailedError) return undefined; // another consumer, or a newer write, won
      throw err;
    }
  }

  private deliver(item: QueueJobItem): void {
    const d: Delivery = {
      item,
      controller: new AbortController(),
      timer: undefined,
      heartbeat: undefined,
      abandoned: false,
      done: Promise.resolve(),
    };
    d.timer = setInterval(() => {
      if (d.heartbeat) return;
      d.heartbeat = this.extendLease(d).finally(() => {
        d.heartbeat = undefined;
      });
    }, this.visibilityMs / 3);
    this.inFlight.set(item.receipt, d);
    d.done = this.run(d).finally(() => {
      clearInterval(d.timer);
      this.inFlight.delete(item.receipt);
      this.wake();
    });
  }

  private async run(d: Delivery): Promise<void> {
    const { item } = d;
    const consume = this.consume;
    if (!consume) return;
    let failure: { err: unknown } | undefined;
    try {
      await consume({ id: item.id, body: item.body, attempt: item.attempts, signal: d.controller.signal });
    } catch (err) {
      failure = { err };
    }
    clearInterval(d.timer);
    await d.heartbeat;
    if (d.abandoned) return;
    try {
      if (failure) await this.fail(d, failure.err);
      else await this.ack(d);
    } catch (err) {
      if (err instanceof ConditionFailedError) {
        this.logger.warn("queue job lease was lost before it finished (redelivered, replaced or deleted)", {
          queue: this.name,
          jobId: item.id,
          attempt: item.attempts,
        });
      } else {
        this.logger.error("queue could not record a job's outcome; it will be redelivered", {
          queue: this.name,
          jobId: item.id,
          err,
        });
      }
    }
  }

  private async ack(d: Delivery): Promise<void> {
    await this.store.delete(queueJobKeys.key(this.name, d.item.id), { condition: cond.eq("receipt", d.item.receipt) });
  }

  private async fail(d: Delivery, err: unknown): Promise<void> {
    const { item } = d;
    const now = Date.now();
    const lastError = describeError(err);
    const dead = item.attempts >= this.maxAttempts || err instanceof PermanentJobError;
    const visibleAt = now + (dead ? 0 : this.backoffMs(item.attempts));
    await this.store.update(queueJobKeys.key(this.name, item.id), {
      set: {
        gsi1pk: dead ? queueJobKeys.dead(this.name) : queueJobKeys.ready(this.name),
        gsi1sk: queueJobKeys.at(visibleAt, item.id),
        visibleAt,
        receipt: newToken(),
        lastError,
        deadAt: dead ? new Date(now).toISOString() : undefined,
      },
      remove: ["leasedBy"],
      condition: cond.eq("receipt", item.receipt),
    });
    const fields = { queue: this.name, jobId: item.id, attempt: item.attempts, error: lastError };
    if (dead) this.logger.error("queue job dead-lettered", fields);
    else this.logger.warn("queue job failed; will retry", { ...fields, retryInMs: visibleAt - now });
  }

  private backoffMs(attempt: number): number {
    const ceiling = Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** Math.max(0, attempt - 1));
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  /** The heartbeat: pushes the lease end forward while the consumer runs (SQS ChangeMessageVisibility). */
  private async extendLease(d: Delivery): Promise<void> {
    if (d.abandoned || d.controller.signal.aborted) return;
    const visibleAt = Date.now() + this.visibilityMs;
    try {
      await this.store.update(queueJobKeys.key(this.name, d.item.id), {
        set: { visibleAt, gsi1sk: queueJobKeys.at(visibleAt, d.item.id) },
        condition: cond.eq("receipt", d.item.receipt),
      });
    } catch (err) {
      if (err instanceof ConditionFailedError) {
        clearInterval(d.timer);
        d.controller.abort(new Error("Lease lost"));
        this.logger.warn("queue job lease lost while running", { queue: this.name, jobId: d.item.id });
      } else {
        this.logger.warn("queue heartbeat failed; will retry", { queue: this.name, jobId: d.item.id, err });
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.sleepers.add(done);
    });
  }
}

function wakeAll(consumers: Set<Consumer>): void {
  for (const c of consumers) c.wake();
}

/** Whether a consumer took `item` to claim it. */
function offerOne(consumers: Set<Consumer>, item: QueueJobItem): boolean {
  for (const c of consumers) if (c.offer(item)) return true;
  return false;
}

function reserveOne(consumers: Set<Consumer>, now: number): Reservation | undefined {
  for (const c of consumers) {
    const slot = c.reserve(now);
    if (slot) return slot;
  }
  return undefined;
}

function describeError(err: unknown): string {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return text.slice(0, 2000);
}
