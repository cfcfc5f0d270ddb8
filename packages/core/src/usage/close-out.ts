import { type AppItem, appKey } from "../apps/entity.ts";
import { ConditionFailedError } from "../errors.ts";
import type { Deps } from "../ports.ts";
import { queryAll } from "../store/store.ts";
import { type MeteredRunItem, meteredRunsPk, RUN_SHARDS } from "./entity.ts";
import { clock, closeOutRun } from "./running.ts";
import { warnOnLimits } from "./warnings.ts";

/**
 * The periodic close-out (with the status sweep, and at the embedded
 * runtime's start): every metered run, listed in RUNS#0..N-1, gets its whole
 * minutes up to now booked (usage/running.ts). A run that ended meanwhile, or
 * that another close-out got to first, books nothing here.
 */
export async function closeOutRunningApps(
  deps: Pick<Deps, "store" | "config" | "broadcaster" | "logger" | "now">,
  concurrency = 16,
): Promise<{ runs: number; booked: number }> {
  const shards = await Promise.all(
    Array.from({ length: RUN_SHARDS }, (_, shard) =>
      queryAll<MeteredRunItem>(deps.store, { pk: meteredRunsPk(shard) }),
    ),
  );
  const runs = shards.flat();
  let booked = 0;
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < runs.length; i = next++) {
      const run = runs[i] as MeteredRunItem;
      try {
        const app = await deps.store.get<AppItem>(appKey(run.ownerId, run.appId), { consistent: true });
        if (!app || app.runId !== run.runId) continue;
        const months = await closeOutRun(deps, app, clock(deps));
        if (!months) continue;
        booked++;
        await warnOnLimits(deps, app.ownerId, months);
      } catch (err) {
        if (err instanceof ConditionFailedError) continue; // closed by someone else meanwhile
        deps.logger.warn("usage close-out failed", { appId: run.appId, error: err });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, runs.length) }, worker));
  return { runs: runs.length, booked };
}
