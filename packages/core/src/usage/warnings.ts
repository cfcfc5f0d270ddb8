import { auditItem } from "../audit/service.ts";
import { ConditionFailedError } from "../errors.ts";
import type { Deps } from "../ports.ts";
import { publish } from "../realtime/publish.ts";
import { cond } from "../store/store.ts";
import { type UserItem, userKeys } from "../users/entity.ts";
import { type UsageItem, usageKey, WARN_THRESHOLDS, type WarnedLimit, warnedAttr } from "./entity.ts";

export const usageChannel = (userId: string) => `usage:${userId}`;

/** The counter a warned limit is measured on, in the limit's unit (deploy minutes from deploy seconds). */
const useOf: Record<WarnedLimit, (u: UsageItem) => number> = {
  deployMinutes: (u) => (u.deploySeconds ?? 0) / 60,
  appMinutes: (u) => u.appRunningMinutes ?? 0,
};

/**
 * After counters of `months` grew: for each of the plan's deployMinutes and
 * appMinutes limits whose use reached 80 % or 100 %, a warning once per
 * threshold per month. "Once" is a conditional write of a marker attribute on
 * the month's usage item, in one transaction with the audit entry; only the
 * writer that wins it pushes `usage:<userId>`. Comparing the counter (not the
 * one update's step) means a warning a crashed writer missed is given by the
 * next update. Best effort: a failure is logged, never thrown.
 */
export async function warnOnLimits(
  deps: Pick<Deps, "store" | "config" | "broadcaster" | "logger">,
  userId: string,
  months: Iterable<string>,
): Promise<void> {
  try {
    const user = await deps.store.get<UserItem>(userKeys.user(userId));
    const plan = deps.config.plans.get(user?.plan);
    for (const month of new Set(months)) {
      const usage = await deps.store.get<UsageItem>(usageKey(userId, month), { consistent: true });
      if (!usage) continue;
      for (const limit of Object.keys(useOf) as WarnedLimit[]) {
        const allowed = plan.limits[limit];
        const use = useOf[limit](usage);
        if (allowed === undefined || use === 0) continue;
        for (const threshold of WARN_THRESHOLDS) {
          const attr = warnedAttr(limit, threshold);
          if (use * 100 < threshold * allowed || usage[attr as keyof UsageItem] !== undefined) continue;
          const warning = {
            type: "usage",
            userId,
            limit,
            threshold,
            use: Math.ceil(use),
            allowed,
            month,
            plan: plan.name,
          };
          try {
            await deps.store.transact([
              {
                update: {
                  ...usageKey(userId, month),
                  set: { [attr]: Date.now() },
                  condition: cond.attrNotExists(attr),
                },
              },
              {
                put: auditItem({
                  userId,
                  action: "usage.warning",
                  resourceType: "usage",
                  resourceId: month,
                  details: { limit, threshold, use: warning.use, allowed, plan: plan.name },
                }),
              },
            ]);
          } catch (err) {
            if (err instanceof ConditionFailedError) continue; // given already
            throw err;
          }
          await publish(deps, usageChannel(userId), [warning]);
        }
      }
    }
  } catch (err) {
    deps.logger.warn("usage warning check failed", { userId, error: err });
  }
}
