import type { Deps } from "../ports.ts";
import type { Key } from "../store/store.ts";

export const usageKey = (userId: string, month: string): Key => ({ pk: `USAGE#${userId}`, sk: month });
export const monthOf = (ms: number) => new Date(ms).toISOString().slice(0, 7);

export type UsageItem = Key & {
  entity: "usage";
  requests?: number;
  deployments?: number;
  deploySeconds?: number;
  appRunningMinutes?: number;
};

/** Metering: atomic counters per user per month (`GET /api/usage`). */
export async function recordDeployUsage(
  deps: Pick<Deps, "store">,
  userId: string,
  at: number,
  durationMs: number,
): Promise<void> {
  await deps.store.update(usageKey(userId, monthOf(at)), {
    set: { entity: "usage" },
    add: { deployments: 1, deploySeconds: Math.ceil(durationMs / 1000) },
  });
}

export async function getUsage(deps: Pick<Deps, "store">, userId: string, month: string) {
  const item = await deps.store.get<UsageItem>(usageKey(userId, month));
  return {
    month,
    requests: item?.requests ?? 0,
    deployments: item?.deployments ?? 0,
    deploySeconds: item?.deploySeconds ?? 0,
    appRunningMinutes: item?.appRunningMinutes ?? 0,
  };
}

/** One authenticated API request. */
export async function recordRequest(deps: Pick<Deps, "store">, userId: string, at = Date.now()): Promise<void> {
  await deps.store.update(usageKey(userId, monthOf(at)), { set: { entity: "usage" }, add: { requests: 1 } });
}

/** Minutes an app ran (metered when it stops). */
export async function recordRunningMinutes(
  deps: Pick<Deps, "store">,
  userId: string,
  startedAt: number,
  stoppedAt: number,
) {
  const minutes = Math.max(1, Math.ceil((stoppedAt - startedAt) / 60_000));
  await deps.store.update(usageKey(userId, monthOf(stoppedAt)), {
    set: { entity: "usage" },
    add: { appRunningMinutes: minutes },
  });
}
