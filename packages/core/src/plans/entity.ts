import type { Key } from "../store/store.ts";
import { userCountsKey } from "../usage/entity.ts";

/**
 * What a user holds against the plan's count limits, on one item per user
 * (`pk USER#<id>`, `sk COUNTS`; the key is usage/entity.ts's, which keeps
 * `runningApps` on the same item). `servers` and `apps` change only in the
 * transaction that creates or deletes one (plans/counts.ts), so they are
 * exact and a limit holds under races. Absent on users from before counts were
 * kept, until first needed (backfillCount).
 */
export type CountsItem = Key & {
  entity: "user-counts";
  servers?: number;
  apps?: number;
  runningApps?: number;
};

/** The count limits kept on the counts item by creates and deletes. */
export type Counted = "servers" | "apps";

export const countsKey = userCountsKey;

/** A new user's counts, written with the user (auth/service.ts createUser). */
export const emptyCounts = (userId: string): CountsItem => ({
  ...countsKey(userId),
  entity: "user-counts",
  servers: 0,
  apps: 0,
});
