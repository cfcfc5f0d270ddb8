import { startLocalWorkers } from "@hoist/local/workers";
import { TableQueue } from "../adapters/local/table-queue.ts";
import { TableScheduler } from "../adapters/local/table-scheduler.ts";
import type { Deps } from "../ports.ts";
import type { DynamoStore } from "../store/dynamo-store.ts";

/**
 * Starts the embedded queue and scheduler consumers for `deps` (as `npm start`
 * does), with fresh adapter instances over the same table — so a second call
 * after `stop()` behaves like a restarted runtime.
 */
export async function startWorkers(deps: Deps) {
  const store = deps.store as DynamoStore;
  const logger = deps.logger;
  const queue = new TableQueue({
    store,
    name: "deploy",
    maxAttempts: 3,
    visibilitySeconds: 30,
    pollIntervalMs: 20,
    maxPollIntervalMs: 100,
    logger,
    reclaimOnStart: true,
  });
  const schedules = new TableQueue({
    store,
    name: "schedules",
    maxAttempts: 3,
    visibilitySeconds: 30,
    pollIntervalMs: 20,
    maxPollIntervalMs: 100,
    logger,
    reclaimOnStart: true,
  });
  const scheduler = new TableScheduler(schedules);
  deps.queue = queue;
  deps.scheduler = scheduler;
  return { queue, scheduler, stop: await startLocalWorkers(deps, queue, scheduler) };
}

export async function eventually<T>(
  check: () => Promise<T | undefined | false>,
  timeoutMs = 10_000,
  what = "condition",
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
