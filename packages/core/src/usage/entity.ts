import type { Key } from "../store/store.ts";

/**
 * One user's metered use in one month: atomic counters on one item, listed
 * per month (gsi1 `USAGE#<month>`) for the admins' all-users view.
 */
export const usageKey = (userId: string, month: string): Key => ({ pk: `USAGE#${userId}`, sk: month });
export const usageByMonthPk = (month: string) => `USAGE#${month}`;
/** What every write of a usage item sets besides its counters (so it is listed by month from its first write). */
export const usageAttrs = (userId: string, month: string) => ({
  entity: "usage",
  userId,
  month,
  gsi1pk: usageByMonthPk(month),
  gsi1sk: userId,
});

export const monthOf = (ms: number) => new Date(ms).toISOString().slice(0, 7);

/** The limits a warning is given for, and the counter each is measured on. */
export type WarnedLimit = "deployMinutes" | "appMinutes";
export const WARN_THRESHOLDS = [80, 100] as const;
/** The attribute on the month's usage item that records a warning was given (once per threshold per month). */
export const warnedAttr = (limit: WarnedLimit, threshold: number) => `warned_${limit}_${threshold}`;

export type UsageItem = Key & {
  entity: "usage";
  userId?: string;
  month?: string;
  requests?: number;
  deployments?: number;
  deploySeconds?: number;
  appRunningMinutes?: number;
  gsi1pk?: string;
  gsi1sk?: string;
} & Partial<Record<`warned_${WarnedLimit}_${number}`, number>>;

/**
 * A user's counts of what they hold (`pk USER#<id>`, `sk COUNTS`); metering
 * keeps only `runningApps` on it (the other counts belong to servers and apps).
 */
export const userCountsKey = (userId: string): Key => ({ pk: `USER#${userId}`, sk: "COUNTS" });

/**
 * Running apps still being metered, listed for the periodic close-out in a few
 * partitions (`RUNS#0..N-1`, read in parallel; never a Scan). One item per
 * app, written when its run starts being metered and deleted in the
 * transaction that closes the run.
 */
export const RUN_SHARDS = 8;
export const meteredRunKey = (ownerId: string, appId: string): Key => ({
  pk: `RUNS#${shardOf(appId)}`,
  sk: `${ownerId}#${appId}`,
});
export const meteredRunsPk = (shard: number) => `RUNS#${shard}`;
export type MeteredRunItem = Key & { entity: "metered-run"; ownerId: string; appId: string; runId: string };

function shardOf(id: string): number {
  let h = 0;
  for (const ch of id) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return h % RUN_SHARDS;
}
