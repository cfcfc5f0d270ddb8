import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../logger.ts";
import type { ScheduledEvent } from "../../ports.ts";
import type { Store } from "../../store/store.ts";
import { testTable } from "../../testing/dynamo.ts";
import { TableQueue, type TableQueueOptions } from "./table-queue.ts";
import { TableScheduler } from "./table-scheduler.ts";

let store: Store;
beforeAll(async () => {
  ({ store } = await testTable("scheduler"));
});

const started: TableScheduler[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.stop({ graceMs: 0 })));
});

let seq = 0;
const newName = () => `schedules${++seq}`;

function scheduler(name: string, opts: Partial<TableQueueOptions> = {}): TableScheduler {
  return new TableScheduler(
    new TableQueue({
      store,
      name,
      maxAttempts: 3,
      visibilitySeconds: 1,
      pollIntervalMs: 20,
      maxPollIntervalMs: 200,
      logger: createLogger("silent"),
      ...opts,
    }),
  );
}

interface Fired {
  event: ScheduledEvent;
  at: number;
}

function start(s: TableScheduler, fired: Fired[], fail = false): TableScheduler {
  s.start(async (event) => {
    fired.push({ event, at: Date.now() });
    if (fail) throw new Error("app store unavailable");
  });
  started.push(s);
  return s;
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

const autoStop = (runId: string): ScheduledEvent => ({ type: "auto-stop", ownerId: "usr_1", appId: "app_1", runId });

describe("TableScheduler", () => {
  it("fires once, at the time", async () => {
    const fired: Fired[] = [];
    const s = start(scheduler(newName()), fired);
    const at = new Date(Date.now() + 400);
    await s.schedule("auto-stop-app_1", at, autoStop("run_1"));
    await waitFor(() => fired.length === 1);
    const lateness = (fired[0]?.at ?? 0) - at.getTime();
    expect(lateness).toBeGreaterThanOrEqual(0);
    expect(lateness).toBeLessThan(400);
    expect(fired[0]?.event).toEqual(autoStop("run_1"));
    await sleep(600);
    expect(fired).toHaveLength(1);
  });

  it("does not fire a cancelled schedule; cancelling an unknown one is fine", async () => {
    const fired: Fired[] = [];
    const s = start(scheduler(newName()), fired);
    await s.schedule("auto-stop-app_1", new Date(Date.now() + 300), autoStop("run_1"));
    await s.cancel("auto-stop-app_1");
    await s.cancel("never-existed");
    await sleep(700);
    expect(fired).toEqual([]);
  });

  it("moves a schedule that is scheduled again", async () => {
    const fired: Fired[] = [];
    const s = start(scheduler(newName()), fired);
    await s.schedule("auto-stop-app_1", new Date(Date.now() + 300), autoStop("run_1"));
    const moved = new Date(Date.now() + 800);
    await s.schedule("auto-stop-app_1", moved, autoStop("run_2"));
    await waitFor(() => fired.length === 1);
    expect(fired[0]?.event).toEqual(autoStop("run_2"));
    expect(fired[0]?.at).toBeGreaterThanOrEqual(moved.getTime());
    await sleep(300);
    expect(fired).toHaveLength(1);
  });

  it("survives a restart: a schedule made by one instance is fired by the next", async () => {
    const name = newName();
    const firedA: Fired[] = [];
    const a = start(scheduler(name), firedA);
    await a.schedule("auto-stop-app_1", new Date(Date.now() + 400), autoStop("run_1"));
    await a.stop();

    const firedB: Fired[] = [];
    start(scheduler(name), firedB);
    await waitFor(() => firedB.length === 1);
    expect(firedB[0]?.event).toEqual(autoStop("run_1"));
    expect(firedA).toEqual([]);
  });

  it("retries a fire that throws, then dead-letters it", async () => {
    const fired: Fired[] = [];
    const s = start(scheduler(newName(), { maxAttempts: 2, backoff: { baseMs: 50, maxMs: 100 } }), fired, true);
    await s.schedule("auto-stop-app_1", new Date(), autoStop("run_1"));
    await waitFor(() => fired.length === 2);
    expect(
      await eventually(
        () => s.deadLetters(),
        (d) => d.length > 0,
      ),
    ).toEqual([
      expect.objectContaining({ id: "auto-stop-app_1", attempts: 2, lastError: "Error: app store unavailable" }),
    ]);
    expect(fired).toHaveLength(2);
  });

  it("dead-letters a stored schedule whose event is invalid, without firing it", async () => {
    const fired: Fired[] = [];
    const s = start(scheduler(newName()), fired);
    await s.queue.sendRaw("bad", JSON.stringify({ type: "reboot-the-world" }));
    await s.queue.sendRaw("not-json", "{");
    const dead = await eventually(
      () => s.deadLetters(),
      (d) => d.length === 2,
    );
    expect(dead.map((d) => [d.id, d.attempts, d.lastError?.split(":")[0]]).sort()).toEqual([
      ["bad", 1, "InvalidScheduledEventError"],
      ["not-json", 1, "InvalidScheduledEventError"],
    ]);
    expect(fired).toEqual([]);
  });
});
