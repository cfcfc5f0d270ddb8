import { ConditionFailedError, ConflictError, ignoreConditionFailed, PaymentRequiredError } from "../errors.ts";
import { owned } from "../owned.ts";
import type { Deps } from "../ports.ts";
import { cond, type Item, queryAll, type TransactOp } from "../store/store.ts";
import { type Counted, type CountsItem, countsKey } from "./entity.ts";
import type { Plan } from "./plans.ts";

const KIND = { servers: "SERVER", apps: "APP" } as const;
const ENTITY = { servers: "server", apps: "app" } as const;
const ATTEMPTS = 4;

/**
 * The counts item's write in the transaction that creates (+1) or deletes (-1)
 * a server or app. Taking one is conditional on the plan's limit (`n < limit`);
 * every write is also conditional on the count being there at all, so a user
 * whose count was never kept (signed up before counts were) fails the
 * transaction instead of starting it at ±1 — see transactCounted.
 */
export function countOp(userId: string, what: Counted, delta: 1 | -1, plan: Plan | null): TransactOp {
  const limit = delta > 0 ? plan?.limits[what] : undefined;
  return {
    update: {
      ...countsKey(userId),
      add: { [what]: delta },
      set: { entity: "user-counts" },
      condition: limit === undefined ? cond.attrExists(what) : cond.compare(what, "<", limit),
    },
  };
}

/**
 * Commits `ops` with the count's write, all or nothing: N+1 racing creates
 * against a limit of N give exactly N. (A transaction may touch an item once:
 * when `ops` already update the counts item — a run's `runningApps` — the
 * count joins that update.) When only the count's condition failed, one
 * consistent read says why: over the limit → 402 naming it, the use and the
 * plan; no count kept yet → backfillCount, then again; changed meanwhile →
 * again. Any other failed condition is the caller's (indexes of `ops`).
 */
async function transactCounted(
  deps: Pick<Deps, "store">,
  userId: string,
  what: Counted,
  delta: 1 | -1,
  plan: Plan | null,
  ops: TransactOp[],
): Promise<void> {
  const { all, index } = withCount(ops, countOp(userId, what, delta, plan));
  for (let attempt = 1; ; attempt++) {
    try {
      await deps.store.transact(all);
      return;
    } catch (err) {
      if (!(err instanceof ConditionFailedError)) throw err;
      if (!err.failedIndexes.includes(index) || err.failedIndexes.some((i) => i !== index)) throw err;
    }
    const counts = await deps.store.get<CountsItem>(countsKey(userId), { consistent: true });
    const use = counts?.[what];
    const limit = plan?.limits[what];
    if (use === undefined) await backfillCount(deps, userId, what);
    else if (plan && limit !== undefined && use >= limit) throw new PaymentRequiredError(what, use, limit, plan.name);
    if (attempt >= ATTEMPTS) throw new ConflictError(`Your ${what} changed meanwhile; try again`);
  }
}

/** Commits `ops` (a create) with one more of `what`, within `plan`'s limit: see transactCounted. */
export const takeCounted = (deps: Pick<Deps, "store">, userId: string, what: Counted, plan: Plan, ops: TransactOp[]) =>
  transactCounted(deps, userId, what, 1, plan, ops);

/** Commits `ops` (a delete) with one fewer of `what`: see transactCounted. */
export const releaseCounted = (deps: Pick<Deps, "store">, userId: string, what: Counted, ops: TransactOp[]) =>
  transactCounted(deps, userId, what, -1, null, ops);

/** `ops` with `count` appended, or merged into their own update of the counts item; and where it is. */
function withCount(ops: TransactOp[], count: TransactOp): { all: TransactOp[]; index: number } {
  if (!("update" in count)) throw new Error("a count is an update");
  const c = count.update;
  const index = ops.findIndex((op) => "update" in op && op.update.pk === c.pk && op.update.sk === c.sk);
  const theirs = ops[index];
  if (!theirs || !("update" in theirs)) return { all: [...ops, count], index: ops.length };
  const u = theirs.update;
  const merged: TransactOp = {
    update: {
      ...u,
      set: { ...u.set, ...c.set },
      add: { ...u.add, ...c.add },
      condition: u.condition && c.condition ? cond.and(u.condition, c.condition) : (u.condition ?? c.condition),
    },
  };
  return { all: ops.map((op, i) => (i === index ? merged : op)), index };
}

/**
 * Starts a count that was never kept (users from before counts existed) from
 * what the user holds: a consistent Query of the table (not the index), then
 * a write conditional on the count still being absent. Race-safe because no
 * create or delete can commit while the count is absent (countOp's
 * condition): the set counted cannot change before the count exists, and of
 * racing backfills the first wins and the others are no-ops.
 */
export async function backfillCount(deps: Pick<Deps, "store">, userId: string, what: Counted): Promise<void> {
  const held = await queryAll<Item>(deps.store, {
    ...owned.all(userId, KIND[what]),
    consistent: true,
    filter: cond.eq("entity", ENTITY[what]),
  });
  await deps.store
    .update(countsKey(userId), {
      set: { entity: "user-counts", [what]: held.length },
      condition: cond.attrNotExists(what),
    })
    .catch(ignoreConditionFailed);
}
