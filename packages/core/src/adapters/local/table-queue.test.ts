import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { createLogger, type Logger } from "../../logger.ts";
import type { Store } from "../../store/store.ts";
import { testTable } from "../../testing/dynamo.ts";
import { type Consume, PermanentJobError, TableQueue, type TableQueueOptions } from "./table-queue.ts";

let store: Store;
beforeAll(async () => {
  ({ store } = await testTable("queue"));
});

const silent = createLogger("silent");
const started: TableQueue[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((q) => q.stop({ graceMs: 0 })));
});

let queueSeq = 0;
/** A fresh queue name per test, so tests never see each other's jobs. */
const newName = () => `q${++queueSeq}`;

function queue(name: string, opts: Partial<TableQueueOptions> = {}): TableQueue {
  return new TableQueue({
    store,
    name,
    maxAttempts: 3,
    visibilitySeconds: 1,
    pollIntervalMs: 20,
    maxPollIntervalMs: 200,
    logger: silent,
    ...opts,
  });
}

function start(q: TableQueue, consume: Consume): TableQueue {
  q.start(consume);
  started.push(q);
  return q;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error("Timed out waiting");
    await sleep(10);
  }
}

async function eventually<T>(get: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 5000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await get();
    if (ok(value) || Date.now() > until) return value;
    await sleep(20);
  }
}

const deploy = (i: number) => ({ type: "deploy" as const, deploymentId: `dep_${i}` });
const counts = (list: string[]) => list.reduce((m, b) => m.set(b, (m.get(b) ?? 0) + 1), new Map<string, number>());
const jobsLeft = async (name: string) => (await store.query({ pk: `QUEUE#${name}`, limit: 100 })).items.length;

describe("TableQueue", () => {
  it("delivers each job once and deletes it, waking an idle poller on send", async () => {
    const name = newName();
    const bodies: string[] = [];
    const q = start(queue(name, { maxPollIntervalMs: 1000 }), async ({ body }) => {
      bodies.push(body);
    });
    for (let i = 0; i < 10; i++) await q.send(deploy(i));
    await waitFor(() => bodies.length === 10);

    await sleep(1200); // the poller is now idle at its longest interval
    const sentAt = Date.now();
    await q.send(deploy(99));
    await waitFor(() => bodies.length === 11);
    expect(Date.now() - sentAt).toBeLessThan(400); // well under the 1 s idle interval

    await sleep(200);
    expect([...counts(bodies).values()].every((n) => n === 1)).toBe(true);
    expect(counts(bodies).size).toBe(11);
    // Each body is its job as sent (consumers claim concurrently: the order they start in is not promised, as on SQS).
    expect(
      bodies
        .map((b) => JSON.parse(b))
        .sort((a, b) => a.deploymentId.localeCompare(b.deploymentId, "en", { numeric: true })),
    ).toEqual([...Array.from({ length: 10 }, (_, i) => deploy(i)), deploy(99)]);
    expect(await jobsLeft(name)).toBe(0);
  });

  it("hands a job sent due now to an idle consumer in this process, which claims it without a Query", async () => {
    let queries = 0;
    const counted: Store = Object.create(store);
    counted.query = (...args) => {
      queries++;
      return store.query(...args);
    };
    let release = () => {};
    const running: string[] = [];
    const q = start(
      queue(newName(), { store: counted, concurrency: 1, pollIntervalMs: 60_000, maxPollIntervalMs: 60_000 }),
      async ({ body }) => {
        running.push(body);
        await new Promise<void>((r) => {
          release = r;
        });
      },
    );
    await sleep(300); // its first poll found nothing: it now sleeps for a minute
    const before = queries;
    await q.send(deploy(1));
    await waitFor(() => running.length === 1, 2000);
    expect(queries).toBe(before); // claimed straight from the send

    await q.send(deploy(2)); // no room (concurrency 1): left to the poll, woken when the first one ends
    await sleep(200);
    expect(running).toHaveLength(1);
    release();
    await waitFor(() => running.length === 2, 2000);
    release();
    expect(running.map((b) => JSON.parse(b).deploymentId)).toEqual(["dep_1", "dep_2"]);
  });

  it("runs a job written in a caller's transaction on a slot reserved for it: no Query, no claim", async () => {
    const calls: string[] = [];
    const counted: Store = Object.create(store);
    for (const m of ["query", "update", "put"] as const) {
      counted[m] = ((...args: never[]) => {
        calls.push(m);
        return (store[m] as (...a: never[]) => Promise<unknown>)(...args);
      }) as never;
    }
    const ran: string[] = [];
    const q = start(
      queue(newName(), { store: counted, concurrency: 1, pollIntervalMs: 60_000, maxPollIntervalMs: 60_000 }),
      async ({ body, attempt }) => {
        ran.push(`${JSON.parse(body).deploymentId}@${attempt} after [${calls.join(",")}]`);
      },
    );
    await sleep(300); // idle for a minute

    // A transaction that fails gives its slot back (and wakes the poll, which finds nothing): the next one gets it.
    const lost = q.sendWith(deploy(1));
    lost.failed();
    await sleep(200);
    calls.length = 0;
    const job = q.sendWith(deploy(2));
    expect(job.op).toMatchObject({ put: { attempts: 1, leasedBy: expect.any(String) } });
    await store.transact([job.op]);
    job.committed();
    await waitFor(() => ran.length === 1, 2000);
    // The transaction was the caller's; the job then ran with no Query and no claim.
    expect(ran).toEqual(["dep_2@1 after []"]);
  });

  it("never hands a job to a consumer of another table (two runtimes in one process)", async () => {
    const name = newName();
    const { store: other } = await testTable("queue-other");
    const ran: string[] = [];
    start(queue(name, { store: other }), async ({ body }) => {
      ran.push(body);
    });
    await sleep(100);
    const job = queue(name).sendWith(deploy(1)); // this table has no consumer: a plain job, not leased
    expect(job.op).toMatchObject({ put: { attempts: 0 } });
    expect((job.op as { put: { leasedBy?: string } }).put.leasedBy).toBeUndefined();
    await store.transact([job.op]);
    job.committed();
    await sleep(300);
    expect(ran).toEqual([]);
    expect(await jobsLeft(name)).toBe(1);
  });

  it("holds a delayed job until its delay has passed", async () => {
    const seen: number[] = [];
    const q = start(queue(newName()), async () => {
      seen.push(Date.now());
    });
    const sentAt = Date.now();
    await q.send(deploy(1), { delaySeconds: 1 });
    await waitFor(() => seen.length === 1);
    expect((seen[0] ?? 0) - sentAt).toBeGreaterThanOrEqual(990);
  });

  it("redelivers a job whose consumer died once its visibility timeout passes", async () => {
    const name = newName();
    let claimedAt = 0;
    let signal: AbortSignal | undefined;
    const a = start(queue(name), (msg) => {
      claimedAt = Date.now();
      signal = msg.signal;
      return new Promise(() => {}); // hangs forever: a crashed consumer
    });
    await a.send(deploy(1));
    await waitFor(() => signal !== undefined);
    await a.stop({ graceMs: 0 }); // abandons it, as a crash would
    expect(signal?.aborted).toBe(true);

    const redelivered: { attempt: number; at: number }[] = [];
    start(queue(name), async ({ attempt }) => {
      redelivered.push({ attempt, at: Date.now() });
    });
    await waitFor(() => redelivered.length === 1);
    expect(redelivered[0]?.attempt).toBe(2);
    expect((redelivered[0]?.at ?? 0) - claimedAt).toBeGreaterThanOrEqual(950);
    await sleep(200);
    expect(redelivered).toHaveLength(1);
    expect(await jobsLeft(name)).toBe(0);
  });

  it("keeps a slow but live job leased with heartbeats, so no other consumer gets it", async () => {
    const name = newName();
    let calls = 0;
    let finished = false;
    const slow: Consume = async () => {
      calls++;
      await sleep(2500); // 2.5 × the visibility timeout
      finished = true;
    };
    const a = start(queue(name), slow);
    start(queue(name), slow);
    await a.send(deploy(1));
    await waitFor(() => finished);
    await sleep(300);
    expect(calls).toBe(1);
    expect(await jobsLeft(name)).toBe(0);
  });

  it("retries a failing job with growing backoff, dead-letters it with lastError, and redrives it", async () => {
    const name = newName();
    const attempts: { attempt: number; at: number }[] = [];
    let fail = true;
    const q = start(queue(name, { backoff: { baseMs: 150, maxMs: 1000 } }), async ({ attempt }) => {
      attempts.push({ attempt, at: Date.now() });
      if (fail) throw new Error(`boom ${attempt}`);
    });
    const id = await q.sendRaw(undefined, "payload");
    await waitFor(() => attempts.length === 3);
    const dead = await eventually(
      () => q.deadLetters(),
      (d) => d.length > 0,
    );

    expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
    const gaps = attempts.slice(1).map((a, i) => a.at - (attempts[i]?.at ?? 0));
    expect(gaps[0]).toBeGreaterThanOrEqual(75 - 5); // 150 ms, half jittered
    expect(gaps[1]).toBeGreaterThanOrEqual(150 - 5); // 300 ms, half jittered
    expect(dead).toEqual([expect.objectContaining({ id, body: "payload", attempts: 3, lastError: "Error: boom 3" })]);
    await sleep(400);
    expect(attempts).toHaveLength(3); // dead jobs are not polled

    fail = false;
    expect(await q.redrive(id)).toBe(true);
    await waitFor(() => attempts.length === 4);
    expect(attempts[3]?.attempt).toBe(1);
    expect(await q.deadLetters()).toEqual([]);
    expect(await q.redrive(id)).toBe(false);
  });

  it("dead-letters a PermanentJobError at once", async () => {
    let calls = 0;
    const q = start(queue(newName()), async () => {
      calls++;
      throw new PermanentJobError("poison");
    });
    const id = await q.sendRaw("poison-1", "not json");
    await waitFor(() => calls === 1);
    expect(
      await eventually(
        () => q.deadLetters(),
        (d) => d.length > 0,
      ),
    ).toEqual([expect.objectContaining({ id, attempts: 1, lastError: "PermanentJobError: poison" })]);
    expect(calls).toBe(1);
  });

  it("loses no job across a restart", async () => {
    const name = newName();
    const done: string[] = [];
    const a = start(queue(name, { concurrency: 1 }), async ({ body }) => {
      await sleep(30);
      done.push(body);
    });
    for (let i = 0; i < 10; i++) await a.send(deploy(i));
    await waitFor(() => done.length >= 3);
    await a.stop(); // graceful: the running job finishes first
    const afterStop = done.length;
    await sleep(150);
    expect(done.length).toBe(afterStop);
    expect(afterStop).toBeLessThan(10);

    start(queue(name), async ({ body }) => {
      done.push(body);
    });
    await waitFor(() => done.length >= 10);
    await sleep(200);
    expect(done).toHaveLength(10);
    expect(counts(done).size).toBe(10);
  });

  it("never runs one job on two consumers", async () => {
    const name = newName();
    const calls: string[] = [];
    const running = new Set<string>();
    let overlaps = 0;
    const consume: Consume = async ({ id }) => {
      if (running.has(id)) overlaps++;
      running.add(id);
      calls.push(id);
      await sleep(Math.random() * 20);
      running.delete(id);
    };
    const a = start(queue(name, { concurrency: 3 }), consume);
    start(queue(name, { concurrency: 3 }), consume);
    await Promise.all(Array.from({ length: 30 }, (_, i) => a.send(deploy(i))));
    await waitFor(() => calls.length >= 30);
    await sleep(300);
    expect(calls).toHaveLength(30);
    expect(counts(calls).size).toBe(30);
    expect(overlaps).toBe(0);
  });

  it("logs store errors while polling and keeps polling", async () => {
    const errors: string[] = [];
    const logger: Logger = { ...silent, error: (msg) => errors.push(msg) };
    let failures = 2;
    const flaky: Store = Object.create(store);
    flaky.query = (spec) => (failures-- > 0 ? Promise.reject(new Error("network down")) : store.query(spec));
    const seen: string[] = [];
    const q = start(queue(newName(), { store: flaky, logger, maxPollIntervalMs: 50 }), async ({ body }) => {
      seen.push(body);
    });
    // Due a moment from now, so no consumer is handed it at the send: only a poll finds it.
    await q.sendRaw(undefined, "survives", { visibleAt: new Date(Date.now() + 100) });
    await waitFor(() => seen.length === 1);
    expect(errors).toEqual(["queue poll failed; retrying", "queue poll failed; retrying"]);
  });
});
