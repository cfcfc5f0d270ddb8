import type { Key } from "../store/store.ts";

/** How long a delivery id is remembered (DynamoDB TTL); GitHub's redeliveries happen well within it. */
export const DELIVERY_TTL_SECONDS = 7 * 24 * 60 * 60;
/** A `processing` claim older than this belongs to a handler that died; a redelivery may take it over. */
export const CLAIM_STALE_MS = 15_000;

export type DeliveryState = "processing" | "done";

/**
 * One GitHub webhook delivery, keyed by `X-GitHub-Delivery`: the dedupe claim
 * and, once handled, what it did.
 */
export type DeliveryItem = Key & {
  entity: "github-delivery";
  id: string;
  event: string;
  repo: string | null;
  state: DeliveryState;
  /** Changes on every claim (and takeover): progress and completion are written only by its holder. */
  claimId: string;
  claimedAt: number;
  /** The exclusive instance that holds the claim, if any (see `Deps.exclusiveInstanceId`). */
  instanceId?: string;
  receivedAt: number;
  finishedAt: number | null;
  /** appId → deploymentId for every deployment queued so far, so a takeover does not queue them again. */
  queued: Record<string, string>;
  /** The outcome (`accepted`, `ignored`, `pong`), once done. */
  outcome: string | null;
  /** Epoch seconds (the table's TTL attribute). */
  expiresAt: number;
};

export const deliveryKey = (deliveryId: string): Key => ({ pk: `DELIVERY#${deliveryId}`, sk: "DELIVERY" });

/** Claims a commit for an app's `ci-success` deploys (TTL 90 days). */
export const ciCommitKey = (appId: string, sha: string): Key => ({ pk: `APP#${appId}#CI`, sk: `SHA#${sha}` });
