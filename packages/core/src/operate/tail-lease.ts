import { ConditionFailedError } from "../errors.ts";
import { newToken } from "../ids.ts";
import type { Deps, JobQueue } from "../ports.ts";
import { subscribers } from "../realtime/publish.ts";
import { type Condition, cond, queryAll } from "../store/store.ts";
import { timeOfMs } from "./compose-logs.ts";
import { appLogsChannel, type TailCursor, type TailLeaseItem, tailLeaseKey, tailLeases } from "./entity.ts";

/**
 * The app-log tail's lease (entity.ts `TailLeaseItem`): one tail per app,
 * however many subscribers. Every write is conditional; none reads first.
 */

type LeaseDeps = Pick<Deps, "store" | "config" | "exclusiveInstanceId">;

/** A little more than one idle interval: renewed at every idle check, so a dead tail's lease lapses soon after. */
export const leaseMs = (deps: Pick<Deps, "config">) => deps.config.operate.tailIdleMs + 5000;
/**
 * An index (the channel's subscribers) can lag a write by a moment on AWS: a
 * subscribe this recent may not be counted yet, so it keeps the tail.
 */
const INDEX_LAG_MS = 2000;
const TTL_SECONDS = 24 * 60 * 60;

/** The queue operator jobs go to: their own one embedded, the only one on AWS. */
export const operateQueue = (deps: Pick<Deps, "queue" | "operateQueue">): JobQueue => deps.operateQueue ?? deps.queue;

/** The lease can be taken: absent, lapsed, or (embedded) written by a process that is gone. */
function takeable(deps: LeaseDeps, now: number): Condition {
  const parts = [cond.notExists(), cond.compare("leaseUntil", "<", now)];
  if (deps.exclusiveInstanceId) parts.push(cond.compare("instanceId", "<>", deps.exclusiveInstanceId));
  return cond.or(...parts);
}

const instance = (deps: LeaseDeps) => (deps.exclusiveInstanceId ? { instanceId: deps.exclusiveInstanceId } : {});

/**
 * Called on every subscribe to `app-logs:<appId>`: takes the lease for a new
 * tail and sends its job when no tail runs, or else tells the running tail
 * that a subscriber wants it (so a release racing this subscribe fails).
 * A fresh tail follows from now (the subscribe): lines written while its job
 * starts are read too, since `--since` is a time and not `--tail 0`.
 */
export async function ensureTail(
  deps: Deps,
  ownerId: string,
  appId: string,
  resumeFrom?: TailCursor,
): Promise<"started" | "running"> {
  for (let attempt = 0; ; attempt++) {
    const now = Date.now();
    const tailId = newToken();
    const lease: TailLeaseItem = {
      ...tailLeaseKey(appId),
      entity: "app-log-tail",
      appId,
      ownerId,
      holder: tailId,
      leaseUntil: now + leaseMs(deps),
      cursor: resumeFrom ?? { since: timeOfMs(now), services: {} },
      ...tailLeases.index(appId),
      ...instance(deps),
      createdAt: now,
      expiresAt: Math.floor(now / 1000) + TTL_SECONDS,
    };
    try {
      await deps.store.put(lease, { condition: takeable(deps, now) });
    } catch (err) {
      if (!(err instanceof ConditionFailedError)) throw err;
      try {
        await deps.store.update(tailLeaseKey(appId), {
          set: { wantedAt: now },
          condition: cond.and(cond.exists(), cond.compare("leaseUntil", ">=", now)),
        });
        return "running";
      } catch (touchErr) {
        // Released or lapsed between the two writes: take it now.
        if (!(touchErr instanceof ConditionFailedError) || attempt >= 3) throw touchErr;
        continue;
      }
    }
    try {
      await operateQueue(deps).send({ type: "app-logs-tail", ownerId, appId, tailId });
    } catch (err) {
      // No job will run it: free the lease for the next subscribe.
      await deps.store.delete(tailLeaseKey(appId), { condition: cond.eq("holder", tailId) }).catch(() => undefined);
      throw err;
    }
    return "started";
  }
}

/**
 * The job named `tailId` starts its run: the lease must still name it, and
 * no other run of it may be alive (a duplicate delivery), unless that run's
 * lease lapsed. Answers the lease (with the cursor to start from), or undefined.
 */
export async function claimTail(
  deps: LeaseDeps,
  appId: string,
  tailId: string,
  runner: string,
): Promise<TailLeaseItem | undefined> {
  const now = Date.now();
  const free = [cond.attrNotExists("runner"), cond.compare("leaseUntil", "<", now)];
  if (deps.exclusiveInstanceId) free.push(cond.compare("instanceId", "<>", deps.exclusiveInstanceId));
  try {
    return await deps.store.update<TailLeaseItem>(tailLeaseKey(appId), {
      set: { runner, leaseUntil: now + leaseMs(deps), ...instance(deps) },
      condition: cond.and(cond.exists(), cond.eq("holder", tailId), cond.or(...free)),
    });
  } catch (err) {
    if (err instanceof ConditionFailedError) return undefined;
    throw err;
  }
}

/**
 * Renews the run's lease, with the cursor of what it published so far (where
 * the sweep resumes should the run die); false once it is no longer this run's.
 */
export async function renewTail(deps: LeaseDeps, appId: string, runner: string, cursor: TailCursor): Promise<boolean> {
  return conditional(() =>
    deps.store.update(tailLeaseKey(appId), {
      set: { leaseUntil: Date.now() + leaseMs(deps), cursor },
      condition: cond.and(cond.exists(), cond.eq("runner", runner)),
    }),
  );
}

/**
 * Ends the tail, when the run still holds the lease and no subscriber asked
 * for it since `quietSince` (see {@link ensureTail}); false otherwise.
 */
export async function releaseTail(
  deps: LeaseDeps,
  appId: string,
  runner: string,
  quietSince?: number,
): Promise<boolean> {
  const mine = cond.eq("runner", runner);
  const condition =
    quietSince === undefined
      ? mine
      : cond.and(
          mine,
          cond.or(cond.attrNotExists("wantedAt"), cond.compare("wantedAt", "<", quietSince - INDEX_LAG_MS)),
        );
  return conditional(() => deps.store.delete(tailLeaseKey(appId), { condition }));
}

/** Hands the lease to the next slice's job (`next`), with the cursor it resumes from; false once it is not this run's. */
export async function handOverTail(
  deps: LeaseDeps,
  appId: string,
  runner: string,
  next: string,
  cursor: TailCursor,
): Promise<boolean> {
  return conditional(() =>
    deps.store.update(tailLeaseKey(appId), {
      set: { holder: next, cursor, leaseUntil: Date.now() + leaseMs(deps) },
      remove: ["runner"],
      condition: cond.and(cond.exists(), cond.eq("runner", runner)),
    }),
  );
}

/** Takes a handed-over lease back (the next job could not be sent); false if it moved on meanwhile. */
export async function takeBackTail(deps: LeaseDeps, appId: string, next: string, runner: string): Promise<boolean> {
  return conditional(() =>
    deps.store.update(tailLeaseKey(appId), {
      set: { runner, leaseUntil: Date.now() + leaseMs(deps) },
      condition: cond.and(cond.exists(), cond.eq("holder", next), cond.attrNotExists("runner")),
    }),
  );
}

async function conditional(write: () => Promise<unknown>): Promise<boolean> {
  try {
    await write();
    return true;
  } catch (err) {
    if (err instanceof ConditionFailedError) return false;
    throw err;
  }
}

/**
 * The status sweep's backstop for tails whose job died (a worker Lambda that
 * crashed or timed out: SQS would redeliver it only after the queue's
 * visibility timeout). A lapsed lease whose channel still has subscribers
 * gets a new tail, resuming from the dead one's cursor; one without
 * subscribers is removed. Answers how many tails it restarted.
 */
export async function restartLapsedTails(deps: Deps): Promise<number> {
  const now = Date.now();
  const lapsed = (await queryAll<TailLeaseItem>(deps.store, tailLeases.all())).filter((l) => l.leaseUntil < now);
  let restarted = 0;
  for (const lease of lapsed) {
    if ((await subscribers(deps, appLogsChannel(lease.appId))).length > 0) {
      if ((await ensureTail(deps, lease.ownerId, lease.appId, lease.cursor)) === "started") restarted++;
    } else {
      // Unless a subscribe took it meanwhile.
      await conditional(() =>
        deps.store.delete(tailLeaseKey(lease.appId), { condition: cond.eq("leaseUntil", lease.leaseUntil) }),
      );
    }
  }
  return restarted;
}
