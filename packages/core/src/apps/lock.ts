import { ConditionFailedError, ignoreConditionFailed } from "../errors.ts";
import type { Deps } from "../ports.ts";
import { cond, type Key, type TransactOp } from "../store/store.ts";

/**
 * One lock per app serialises everything that runs commands in its directory:
 * deploys, starts and stops. It is a lease: the holder renews it while alive,
 * and any worker that finds it past `leaseUntil` may take it over (failing the
 * stranded work it names). Not re-entrant: two workers woken for the same work
 * never both get it.
 */
export type LockWork = { kind: "deploy"; deploymentId: string } | { kind: "start" | "stop"; runId: string };

export type AppLockItem = Key & {
  entity: "app-lock";
  appId: string;
  ownerId: string;
  /** Unique per acquisition: renewals and the release are conditional on it. */
  holder: string;
  work: LockWork;
  leaseUntil: number;
  acquiredAt: number;
  /** The exclusive instance that took it, if any (see `Deps.exclusiveInstanceId`). */
  instanceId?: string;
};

/** Whether the lock's holder can no longer be working: its lease lapsed, or its (exclusive) process is gone. */
export function lapsed(deps: Pick<Deps, "exclusiveInstanceId">, lock: AppLockItem, now = Date.now()): boolean {
  if (lock.leaseUntil <= now) return true;
  return deps.exclusiveInstanceId !== undefined && lock.instanceId !== deps.exclusiveInstanceId;
}

export const appLockKey = (appId: string): Key => ({ pk: `APP#${appId}`, sk: "LOCK" });

export type Acquired = {
  lock: AppLockItem;
  /** The lapsed lock this acquisition took over: its work was stranded by a dead worker. */
  takenOver: AppLockItem | undefined;
  /** Whether the caller's `joined` writes were made, in the lock's own transaction. */
  joined: boolean;
};

/**
 * Takes the app's lock for `work`, or answers the live lock that holds it.
 * A free lock is taken in one write, together with `joined` (the caller's
 * writes, all or nothing: a failed condition of theirs throws ConditionFailedError
 * and takes nothing). A held or lapsed one is read first, and `joined` is left to the caller.
 */
export async function acquireAppLock(
  deps: Pick<Deps, "store" | "config" | "exclusiveInstanceId">,
  owner: { ownerId: string; appId: string },
  work: LockWork,
  holder: string,
  joined: TransactOp[] = [],
): Promise<Acquired | { held: AppLockItem }> {
  const lockOf = (now: number): AppLockItem => ({
    ...appLockKey(owner.appId),
    entity: "app-lock",
    ...owner,
    holder,
    work,
    leaseUntil: now + deps.config.deploy.leaseMs,
    acquiredAt: now,
    ...(deps.exclusiveInstanceId ? { instanceId: deps.exclusiveInstanceId } : {}),
  });
  const free = lockOf(Date.now());
  try {
    const put = { put: free, condition: cond.attrNotExists("pk") };
    if (joined.length === 0) await deps.store.put(put.put, { condition: put.condition });
    else await deps.store.transact([put, ...joined]);
    return { lock: free, takenOver: undefined, joined: joined.length > 0 };
  } catch (err) {
    if (!(err instanceof ConditionFailedError)) throw err;
    if (joined.length > 0 && !err.failedIndexes.includes(0)) throw err; // theirs failed, on a free lock
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    const current = await deps.store.get<AppLockItem>(appLockKey(owner.appId), { consistent: true });
    const now = Date.now();
    if (current && !lapsed(deps, current, now)) return { held: current };
    const lock = lockOf(now);
    try {
      // Conditional on the lock we saw: of two workers racing for a free or lapsed lock, one wins.
      await deps.store.put(lock, {
        condition: current ? cond.eq("holder", current.holder) : cond.attrNotExists("pk"),
      });
      return { lock, takenOver: current, joined: false };
    } catch (err) {
      if (!(err instanceof ConditionFailedError)) throw err;
    }
  }
  const current = await deps.store.get<AppLockItem>(appLockKey(owner.appId), { consistent: true });
  if (current) return { held: current };
  throw new Error(`Could not take the lock of app ${owner.appId}`);
}

/** Pushes the lease forward; false when the lock is no longer ours (taken over after a stall). */
export async function renewAppLock(deps: Pick<Deps, "store" | "config">, lock: AppLockItem): Promise<boolean> {
  const leaseUntil = Date.now() + deps.config.deploy.leaseMs;
  try {
    await deps.store.update(appLockKey(lock.appId), { set: { leaseUntil }, condition: cond.eq("holder", lock.holder) });
    lock.leaseUntil = leaseUntil;
    return true;
  } catch (err) {
    if (err instanceof ConditionFailedError) return false;
    throw err;
  }
}

export async function releaseAppLock(deps: Pick<Deps, "store">, lock: AppLockItem): Promise<void> {
  await deps.store
    .delete(appLockKey(lock.appId), { condition: cond.eq("holder", lock.holder) })
    .catch(ignoreConditionFailed);
}

/**
 * Renews the lock every quarter lease while `run` works; `onTick` runs at each
 * renewal (a deploy checks for a cancel there). Renewal errors are logged and
 * retried at the next tick.
 */
export async function withHeartbeat<T>(
  deps: Pick<Deps, "store" | "config" | "logger">,
  lock: AppLockItem,
  run: () => Promise<T>,
  onTick?: () => Promise<void>,
): Promise<T> {
  let busy = false;
  const timer = setInterval(
    async () => {
      if (busy) return;
      busy = true;
      try {
        if (!(await renewAppLock(deps, lock)))
          deps.logger.warn("app lock was taken over while its work still ran", { appId: lock.appId });
        await onTick?.();
      } catch (err) {
        deps.logger.warn("app lock heartbeat failed", { appId: lock.appId, error: err });
      } finally {
        busy = false;
      }
    },
    Math.max(250, Math.floor(deps.config.deploy.leaseMs / 4)),
  );
  try {
    return await run();
  } finally {
    clearInterval(timer);
  }
}
