import { TableQueue } from "@hoist/core/adapters/local/table-queue";
import type { JobHandlers } from "@hoist/core/jobs/worker";
import type { Deps } from "@hoist/core/ports";
import type { Store } from "@hoist/core/store/store";
import { consumeJobs } from "./workers.ts";

/**
 * Embedded, operator jobs (app-log tails, execs: long-lived, mostly waiting on
 * SSH output) have a queue of their own with many slots, so they never hold
 * the deploy queue's few. The same job handlers the worker Lambda runs.
 */
export const OPERATE_CONCURRENCY = 64;

export function operateQueue(
  store: Store,
  opts: { maxAttempts: number; visibilitySeconds: number; logger: Deps["logger"]; pollIntervalMs?: number },
): TableQueue {
  return new TableQueue({
    store,
    name: "operate",
    concurrency: OPERATE_CONCURRENCY,
    reclaimOnStart: true,
    maxPollIntervalMs: opts.pollIntervalMs ? opts.pollIntervalMs * 5 : undefined,
    ...opts,
  });
}

/**
 * Starts consuming `queue` with `handlers`, as the deploy queue is (workers.ts `consumeJobs`). Returns the stop function: it
 * aborts `stopping` first (`Deps.stopping`: running tails and execs end at
 * once, cleanly), then stops the queue.
 */
export async function startOperateQueue(
  deps: Deps,
  queue: TableQueue,
  handlers: JobHandlers,
  stopping: AbortController,
): Promise<() => Promise<void>> {
  await consumeJobs(deps, queue, handlers);
  return async () => {
    stopping.abort();
    await queue.stop({ graceMs: 10_000 });
  };
}
