import { ConditionFailedError, HoistError } from "../errors.ts";
import type { Deps } from "../ports.ts";
import { cond, type Store, type TransactOp } from "../store/store.ts";
import { CLAIM_STALE_MS, DELIVERY_TTL_SECONDS, type DeliveryItem, type DeliveryState, deliveryKey } from "./entity.ts";

/**
 * The claim on a delivery id (`X-GitHub-Delivery`): dedupe and crash safety.
 *
 * The claim is written in the same transaction as what the delivery does (its
 * deployments, their queued markers, the audit entries), already `done`: a
 * delivery is handled entirely or not at all, and of racing redeliveries
 * exactly one transaction goes through (the claim's put is conditional on its
 * absence); the others lose that condition, read the claim once and answer
 * `duplicate` with its deployments.
 *
 * A claim is `processing` only while work that cannot join that transaction
 * runs: a workflow run's records and incidents (claimed first), or a fan-out
 * past DynamoDB's 100 actions per transaction. A redelivery meanwhile answers
 * 503 with Retry-After (its outcome is not known yet); once the claim is older
 * than CLAIM_STALE_MS (the handler died: the work takes milliseconds and
 * GitHub gives up after 10 s), a redelivery takes it over — an update
 * conditional on the old `claimId` in its own transaction — and does only
 * what `queued` does not list yet.
 */

/** The delivery an attempt handles; `claimId` is this attempt's, fresh. */
export interface DeliveryRef {
  deliveryId: string;
  event: string;
  repo: string | null;
  claimId: string;
}

/** How this attempt's next transaction writes the claim. */
export type Hold =
  /** Nobody holds the delivery id: claim it (a put, conditional on its absence). */
  | { kind: "new" }
  /** A dead attempt's `processing` claim: take it over (conditional on its `claimId`). */
  | { kind: "takeover"; from: DeliveryItem }
  /** This attempt's own `processing` claim: go on with it (conditional on our `claimId`). */
  | { kind: "ours"; queued: Record<string, string> };

/** A hold on a claim someone else wrote (or nobody did). */
export type Claimable = Exclude<Hold, { kind: "ours" }>;

/** What the claim as read means for this attempt. */
export type Standing = { duplicate: DeliveryItem } | { hold: Claimable };

/** appId → deploymentId already queued under the claim `hold` writes. */
export const queuedUnder = (hold: Hold): Record<string, string> =>
  hold.kind === "takeover" ? { ...hold.from.queued } : hold.kind === "ours" ? { ...hold.queued } : {};

/**
 * Judges a claim as read (undefined: none): handled → duplicate; held by a live
 * attempt → 503 Retry-After; left by a dead one → taken over; none → claimed.
 */
export function standingOf(deps: Pick<Deps, "exclusiveInstanceId">, existing: DeliveryItem | undefined): Standing {
  if (!existing) return { hold: { kind: "new" } };
  if (existing.state !== "processing") return { duplicate: existing };
  // Held elsewhere, or by an attempt that died at it: either way its answer is not ours to give. Ask again later.
  const orphaned = deps.exclusiveInstanceId !== undefined && existing.instanceId !== deps.exclusiveInstanceId;
  if (existing.claimedAt > Date.now() - CLAIM_STALE_MS && !orphaned) throw inProgress(existing.claimedAt);
  return { hold: { kind: "takeover", from: existing } };
}

/** After the claim's condition failed: one consistent read says why. */
export async function rereadClaim(
  deps: Pick<Deps, "store" | "exclusiveInstanceId">,
  deliveryId: string,
): Promise<Standing> {
  return standingOf(deps, await deps.store.get<DeliveryItem>(deliveryKey(deliveryId), { consistent: true }));
}

/** The claim's write in a transaction: first in it, so a lost claim is failed index 0. */
export function claimWrite(
  deps: Pick<Deps, "exclusiveInstanceId">,
  d: DeliveryRef,
  hold: Hold,
  set: { state: DeliveryState; queued: Record<string, string>; outcome: string | null },
): TransactOp {
  const now = Date.now();
  const finishedAt = set.state === "done" ? now : null;
  if (hold.kind === "new") {
    const item: DeliveryItem = {
      ...deliveryKey(d.deliveryId),
      entity: "github-delivery",
      id: d.deliveryId,
      event: d.event,
      repo: d.repo,
      claimId: d.claimId,
      claimedAt: now,
      ...(deps.exclusiveInstanceId ? { instanceId: deps.exclusiveInstanceId } : {}),
      receivedAt: now,
      ...set,
      finishedAt,
      expiresAt: Math.floor(now / 1000) + DELIVERY_TTL_SECONDS,
    };
    return { put: item, condition: cond.notExists() };
  }
  const holder = hold.kind === "takeover" ? hold.from.claimId : d.claimId;
  return {
    update: {
      ...deliveryKey(d.deliveryId),
      set: {
        ...set,
        finishedAt,
        claimId: d.claimId,
        claimedAt: now,
        instanceId: deps.exclusiveInstanceId ?? null,
      },
      condition: cond.and(cond.eq("state", "processing"), cond.eq("claimId", holder)),
    },
  };
}

/**
 * Claims the delivery `processing` on its own, before work that cannot join
 * the final transaction (a workflow run's records and incidents); answers the
 * hold to finish it with, or the duplicate it turned out to be.
 */
export async function claimFirst(
  deps: Pick<Deps, "store" | "exclusiveInstanceId">,
  d: DeliveryRef,
  start: Claimable,
): Promise<{ duplicate: DeliveryItem } | { hold: Hold }> {
  let hold: Hold = start;
  for (let attempt = 0; ; attempt++) {
    const queued = queuedUnder(hold);
    try {
      await writeOne(deps.store, claimWrite(deps, d, hold, { state: "processing", queued, outcome: null }));
      return { hold: { kind: "ours", queued } };
    } catch (err) {
      if (!(err instanceof ConditionFailedError)) throw err;
    }
    // Gone in between (expired), or taken over by a racing redelivery: look again, a few times at most.
    if (attempt >= 2) throw inProgress(Date.now());
    const standing = await rereadClaim(deps, d.deliveryId);
    if ("duplicate" in standing) return standing;
    hold = standing.hold;
  }
}

async function writeOne(store: Pick<Store, "put" | "update">, op: TransactOp): Promise<void> {
  if ("put" in op) await store.put(op.put, { condition: op.condition });
  else if ("update" in op) await store.update(op.update, op.update);
  else throw new Error("A claim is a put or an update");
}

/** 503 + Retry-After: the delivery's outcome is not known yet (GitHub's "Redeliver" later gets it). */
export class DeliveryInProgressError extends HoistError {
  override name = "DeliveryInProgressError";
  constructor(retryAfterSeconds: number) {
    super(503, "delivery_in_progress", "This delivery is being processed; redeliver it shortly", {
      headers: { "Retry-After": String(retryAfterSeconds) },
    });
  }
}

export const inProgress = (claimedAt: number) =>
  new DeliveryInProgressError(Math.max(1, Math.ceil((claimedAt + CLAIM_STALE_MS - Date.now()) / 1000)));
