import type { AppItem } from "../apps/entity.ts";
import { owned } from "../owned.ts";
import type { Plan } from "../plans/plans.ts";
import { PRICED } from "../plans/plans.ts";
import type { Deps } from "../ports.ts";
import { cond, queryAll, type TransactOp } from "../store/store.ts";
import { type UserItem, userKeys } from "../users/entity.ts";
import { monthOf, type UsageItem, usageAttrs, usageByMonthPk, usageKey } from "./entity.ts";
import { clock, liveMinutes } from "./running.ts";

// The usage routes read the month from here.
export { monthOf } from "./entity.ts";

/**
 * A finished deployment's use, for the transaction that records its terminal
 * status (so it is counted exactly once): one deployment and its seconds,
 * rounded up, booked to the month it finished in.
 */
export function deployUsageOp(userId: string, at: number, durationMs: number): TransactOp {
  const month = monthOf(at);
  return {
    update: {
      ...usageKey(userId, month),
      set: usageAttrs(userId, month),
      add: { deployments: 1, deploySeconds: Math.ceil(Math.max(0, durationMs) / 1000) },
    },
  };
}

export async function planOf(deps: Pick<Deps, "store" | "config">, userId: string): Promise<Plan> {
  const user = await deps.store.get<UserItem>(userKeys.user(userId));
  return deps.config.plans.get(user?.plan);
}

const counters = (userId: string, month: string, item: UsageItem | undefined) => ({
  userId,
  month,
  requests: item?.requests ?? 0,
  deployments: item?.deployments ?? 0,
  deploySeconds: item?.deploySeconds ?? 0,
  appRunningMinutes: item?.appRunningMinutes ?? 0,
});

/**
 * A user's use in a month, against their plan. Requests are counted in the
 * background (the UsageMeter): the user's pending ones are written first, so
 * the answer includes every request this process has seen, this one too.
 * `liveAppMinutes`: minutes of the user's running apps not yet booked (what
 * stopping them now would add to `appRunningMinutes` in this month).
 */
export async function getUsage(deps: Pick<Deps, "store" | "usage" | "config" | "now">, userId: string, month: string) {
  await deps.usage.flush(userId);
  const [item, plan, apps] = await Promise.all([
    deps.store.get<UsageItem>(usageKey(userId, month), { consistent: true }),
    planOf(deps, userId),
    queryAll<AppItem>(deps.store, {
      index: "gsi1",
      pk: owned.listPk(userId, "APP"),
      filter: cond.eq("status", "running"),
    }),
  ]);
  const now = clock(deps);
  const liveAppMinutes = apps.reduce((sum, app) => sum + liveMinutes(app, now, month), 0);
  return { ...counters(userId, month, item), liveAppMinutes, plan: plan.name, limits: plan.limits };
}

/** Every user's use in a month (admins), a page at a time, by user id. */
export async function listUsage(deps: Pick<Deps, "store">, month: string, limit: number, cursor?: string) {
  const page = await deps.store.query<UsageItem>({ index: "gsi1", pk: usageByMonthPk(month), limit, cursor });
  return {
    items: page.items.map((u) => counters(u.userId ?? u.pk.slice("USAGE#".length), month, u)),
    nextCursor: page.nextCursor,
  };
}

export interface StatementLine {
  item: (typeof PRICED)[number];
  quantity: number;
  unitCents: number;
  amountCents: number;
}

/**
 * A month's statement: each booked counter times the unit price of the user's
 * plan, each line rounded to whole cents (half up), the total their sum.
 * Running minutes not yet booked (an app still running) appear once booked.
 */
export async function usageStatement(deps: Pick<Deps, "store" | "usage" | "config">, userId: string, month: string) {
  await deps.usage.flush(userId);
  const [item, plan] = await Promise.all([
    deps.store.get<UsageItem>(usageKey(userId, month), { consistent: true }),
    planOf(deps, userId),
  ]);
  const lines: StatementLine[] = PRICED.map((name) => {
    const quantity = item?.[name] ?? 0;
    const unitCents = plan.prices[name] ?? 0;
    // Cents with float noise taken off before rounding (0.01 × 200 is 2.0000000000000004).
    return { item: name, quantity, unitCents, amountCents: Math.round(Number((quantity * unitCents).toFixed(6))) };
  });
  return { month, plan: plan.name, lines, totalCents: lines.reduce((sum, l) => sum + l.amountCents, 0) };
}

/** The statement's lines as CSV (RFC 4180; no field needs quoting). */
export function statementCsv(statement: { lines: StatementLine[] }): string {
  const rows = statement.lines.map((l) => [l.item, l.quantity, l.unitCents, l.amountCents].join(","));
  return `${["item,quantity,unitCents,amountCents", ...rows].join("\r\n")}\r\n`;
}
