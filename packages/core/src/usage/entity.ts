import type { Key } from "../store/store.ts";

/** One user's metered use in one month: atomic counters on one item. */
export const usageKey = (userId: string, month: string): Key => ({ pk: `USAGE#${userId}`, sk: month });
export const monthOf = (ms: number) => new Date(ms).toISOString().slice(0, 7);

export type UsageItem = Key & {
  entity: "usage";
  requests?: number;
  deployments?: number;
  deploySeconds?: number;
  appRunningMinutes?: number;
};
