import type { Actor } from "../actor.ts";
import { PaymentRequiredError } from "../errors.ts";
import type { Deps } from "../ports.ts";
import { cond, type TransactOp } from "../store/store.ts";
import { monthOf, type UsageItem, usageKey } from "../usage/entity.ts";
import { type UserItem, userKeys } from "../users/entity.ts";
import type { Plan } from "./plans.ts";

/**
 * The plan `userId` is on: the signed-in actor's as loaded with the request
 * (no read), else the user's as read now (system work, another owner).
 */
export async function planOf(
  deps: Pick<Deps, "store" | "config">,
  userId: string,
  actor?: Actor | null,
): Promise<Plan> {
  if (actor?.userId === userId && actor.plan !== undefined) return deps.config.plans.get(actor.plan);
  const user = await deps.store.get<UserItem>(userKeys.user(userId));
  return deps.config.plans.get(user?.plan);
}

/**
 * Deploy minutes: a deployment is queued only while the owner's deploy time
 * this month (the usage item's `deploySeconds`, booked when deployments end)
 * is under the plan's `deployMinutes` — a check in the transaction that queues
 * it. None when the plan sets no such limit.
 */
export function deployMinutesCheck(
  userId: string,
  plan: Plan,
  now: number,
): Extract<TransactOp, { check: unknown }> | undefined {
  const limit = plan.limits.deployMinutes;
  if (limit === undefined) return undefined;
  return {
    check: usageKey(userId, monthOf(now)),
    condition: cond.or(cond.attrNotExists("deploySeconds"), cond.compare("deploySeconds", "<", limit * 60)),
  };
}

/** The 402 of a deployment over `plan`'s deploy minutes, the use as `usage` (the month's item) says. */
export function overDeployMinutes(plan: Plan, usage: UsageItem | undefined): PaymentRequiredError {
  const used = Math.floor((usage?.deploySeconds ?? 0) / 60);
  return new PaymentRequiredError("deployMinutes", used, plan.limits.deployMinutes ?? 0, plan.name);
}

/** Whether `usage` is already at or past `plan`'s deploy minutes (what deployMinutesCheck refuses). */
export function isOverDeployMinutes(plan: Plan, usage: UsageItem | undefined): boolean {
  const limit = plan.limits.deployMinutes;
  return limit !== undefined && (usage?.deploySeconds ?? 0) >= limit * 60;
}

/** Whether any configured plan limits deploy minutes (if none, a webhook reads no plans or usage). */
export const deployMinutesLimited = (deps: Pick<Deps, "config">): boolean =>
  Object.values(deps.config.plans.byName).some((p) => p.limits.deployMinutes !== undefined);

/** Per owner: the plan, and (over its deploy minutes this month) the 402 that says so. */
export type Quotas = Map<string, { plan: Plan; over: PaymentRequiredError | null }>;

/**
 * For a webhook's deployments (github/webhook-deploys.ts): each owner's plan
 * and whether they are over its deploy minutes, in one BatchGetItem of their
 * users and usage items. Empty (and nothing read) when no plan limits deploy minutes.
 */
export async function deployQuotas(deps: Pick<Deps, "store" | "config">, ownerIds: string[], now: number) {
  const owners = [...new Set(ownerIds)];
  const out: Quotas = new Map();
  if (owners.length === 0 || !deployMinutesLimited(deps)) return out;
  const month = monthOf(now);
  const items = await deps.store.batchGet([
    ...owners.map((id) => userKeys.user(id)),
    ...owners.map((id) => usageKey(id, month)),
  ]);
  owners.forEach((id, i) => {
    const plan = deps.config.plans.get((items[i] as UserItem | undefined)?.plan);
    const usage = items[owners.length + i] as UsageItem | undefined;
    out.set(id, { plan, over: isOverDeployMinutes(plan, usage) ? overDeployMinutes(plan, usage) : null });
  });
  return out;
}

/** After their deploy-minutes check failed in a transaction: the owners' use as it is now, marking them over. */
export async function rereadQuotas(deps: Pick<Deps, "store">, quotas: Quotas, owners: string[], now: number) {
  const usage = await deps.store.batchGet<UsageItem>(owners.map((id) => usageKey(id, monthOf(now))));
  owners.forEach((id, i) => {
    const quota = quotas.get(id);
    if (quota) quota.over = overDeployMinutes(quota.plan, usage[i]);
  });
}

/** A refused deployment's `error`: the limit, the plan, the use. */
export function refusalMessage(over: PaymentRequiredError): string {
  const m = over.extra.members ?? {};
  return (
    `Not deployed: over the ${String(m.limit)} limit of plan "${String(m.plan)}" ` +
    `(${String(m.allowed)} deploy minutes a month, ${String(m.use)} used); upgrade the plan or wait for next month`
  );
}
