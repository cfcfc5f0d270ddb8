import type { AppItem } from "../apps/entity.ts";
import type { Deps } from "../ports.ts";
import { type Condition, cond, type TransactOp } from "../store/store.ts";
import { type MeteredRunItem, meteredRunKey, monthOf, usageAttrs, usageKey, userCountsKey } from "./entity.ts";

/**
 * Running time, metered exactly (issue: pay-per-use). A running app carries a
 * watermark, `meteredUntil` (ms): every minute before it is on a usage item,
 * none after it is. A close-out books [meteredUntil, to) and moves the
 * watermark in ONE transaction conditional on the watermark it read (and on
 * the run id), so racing close-outs (the sweep, a stop, a force delete) count
 * each minute once: the loser's condition fails and it counts nothing.
 *
 * Rounding: the periodic close-out books whole minutes only and moves the
 * watermark by exactly those; the final one (the run ends) books the rest
 * rounded up — a started minute counts as one, so a run of 1 s is 1 minute
 * and a run of 61 s is 2. Each minute belongs to the month (UTC) it starts in.
 */
export const MINUTE = 60_000;

/** The metering clock: `deps.now` where a test injects one, else the wall clock. */
export const clock = (deps: Pick<Deps, "now">): number => deps.now?.() ?? Date.now();

/** `minutes` whole minutes from `from`, by the UTC month each one starts in. */
export function minutesByMonth(from: number, minutes: number): Map<string, number> {
  const out = new Map<string, number>();
  for (let i = 0; i < minutes; ) {
    const start = new Date(from + i * MINUTE);
    const nextMonth = Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1);
    const upTo = Math.min(minutes, Math.ceil((nextMonth - from) / MINUTE));
    out.set(monthOf(start.getTime()), upTo - i);
    i = upTo;
  }
  return out;
}

/** What a close-out of [from, to) books: whole minutes (periodic) or all of it, a started minute as one (final). */
export function span(from: number, to: number, final: boolean) {
  const ms = Math.max(0, to - from);
  const minutes = final ? Math.ceil(ms / MINUTE) : Math.floor(ms / MINUTE);
  return { minutes, until: from + minutes * MINUTE, byMonth: minutesByMonth(from, minutes) };
}

const usageAdds = (userId: string, byMonth: Map<string, number>): TransactOp[] =>
  [...byMonth].map(([month, n]) => ({
    update: { ...usageKey(userId, month), set: usageAttrs(userId, month), add: { appRunningMinutes: n } },
  }));

/** A run begins to be metered at `at`: the app's `set` and the ops that list it for the periodic close-out. */
export function meteringStart(app: Pick<AppItem, "ownerId" | "id">, runId: string, at: number) {
  const marker: MeteredRunItem = {
    ...meteredRunKey(app.ownerId, app.id),
    entity: "metered-run",
    ownerId: app.ownerId,
    appId: app.id,
    runId,
  };
  return { set: { meteredUntil: at }, ops: [{ put: marker }] as TransactOp[] };
}

/** The run holds one of the owner's `runningApps` (from its start until it ends). */
export const takeRunningSlot = (ownerId: string, limit: number | undefined): TransactOp => ({
  update: {
    ...userCountsKey(ownerId),
    set: { entity: "user-counts" },
    add: { runningApps: 1 },
    ...(limit === undefined
      ? {}
      : { condition: cond.or(cond.attrNotExists("runningApps"), cond.compare("runningApps", "<", limit)) }),
  },
});

/**
 * The end of a run as read in `app` (stop, auto-stop, a failed start, force
 * delete): for the app's own write, what to remove and the condition that it
 * is still exactly this state (watermark and slot), and the other ops: the
 * last minutes, the released `runningApps` slot, the sweep's listing gone.
 * Nothing to do for an app that holds neither.
 */
export function runEnd(app: AppItem, at: number) {
  const remove: string[] = [];
  const conditions: Condition[] = [];
  const ops: TransactOp[] = [];
  const months: string[] = [];
  if (app.meteredUntil != null) {
    const last = span(app.meteredUntil, at, true);
    remove.push("meteredUntil");
    conditions.push(cond.eq("meteredUntil", app.meteredUntil));
    ops.push(...usageAdds(app.ownerId, last.byMonth), { delete: meteredRunKey(app.ownerId, app.id) });
    months.push(...last.byMonth.keys());
  } else conditions.push(cond.attrNotExists("meteredUntil"));
  if (app.countedRun) {
    remove.push("countedRun");
    conditions.push(cond.eq("countedRun", app.countedRun));
    ops.push({ update: { ...userCountsKey(app.ownerId), add: { runningApps: -1 } } });
  } else conditions.push(cond.attrNotExists("countedRun"));
  return { remove, condition: cond.and(...conditions), ops, months };
}

/**
 * The periodic close-out of one running app: its whole minutes up to `now`,
 * with the watermark moved by exactly those. False when there was nothing to
 * book or another close-out got there first (it booked them).
 */
export async function closeOutRun(deps: Pick<Deps, "store">, app: AppItem, now: number) {
  if (app.status !== "running" || app.meteredUntil == null || !app.runId) return undefined;
  const s = span(app.meteredUntil, now, false);
  if (s.minutes === 0) return undefined;
  await deps.store.transact([
    {
      update: {
        pk: app.pk,
        sk: app.sk,
        set: { meteredUntil: s.until },
        condition: cond.and(
          cond.eq("status", "running"),
          cond.eq("runId", app.runId),
          cond.eq("meteredUntil", app.meteredUntil),
        ),
      },
    },
    ...usageAdds(app.ownerId, s.byMonth),
  ]);
  return [...s.byMonth.keys()];
}

/** Minutes a final close-out at `now` would book in `month`: the live, not yet booked part of a run. */
export function liveMinutes(app: AppItem, now: number, month: string): number {
  if (app.status !== "running" || app.meteredUntil == null) return 0;
  return span(app.meteredUntil, now, true).byMonth.get(month) ?? 0;
}
