import type { Deps } from "../ports.ts";
import { monthOf, type UsageItem, usageKey } from "./entity.ts";

// The usage routes read the month from here.
export { monthOf } from "./entity.ts";

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

/**
 * A user's use in a month. Requests are counted in the background (the
 * UsageMeter): the user's pending ones are written first, so the answer
 * includes every request this process has seen, this one too.
 */
export async function getUsage(deps: Pick<Deps, "store" | "usage">, userId: string, month: string) {
  await deps.usage.flush(userId);
  const item = await deps.store.get<UsageItem>(usageKey(userId, month));
  return {
    month,
    requests: item?.requests ?? 0,
    deployments: item?.deployments ?? 0,
    deploySeconds: item?.deploySeconds ?? 0,
    appRunningMinutes: item?.appRunningMinutes ?? 0,
  };
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
