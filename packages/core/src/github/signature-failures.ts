import { RateLimitedError } from "../errors.ts";
import { countInWindow, rateWindow } from "../http/middleware/rate-limit.ts";
import type { Deps } from "../ports.ts";
import type { Key } from "../store/store.ts";

const SCOPE = "webhook-signature-failures";

/** A sender's failure count this minute: the item to read, and what to refuse at. */
export interface FailureWindow {
  key: Key;
  limit: number;
  /** Seconds until the next window. */
  reset: number;
}

/**
 * Failed webhook signatures per client IP and minute. A sender over
 * `HOIST_RATE_LIMIT_WEBHOOK_FAILURES` is refused (429) and a large body
 * before Hoist reads it or computes its HMAC (a pass over up to 10 MB); good
 * deliveries never count, so GitHub itself is never limited by this. The
 * count is read only when a signature fails (webhooks.ts): for a body of a
 * few KiB the HMAC costs less than the read would, so good deliveries never
 * wait on it; a large body is refused on the count alone, before it is read
 * (`refuseIfFailing`). Null when the limit is off.
 */
export function failureWindow(deps: Pick<Deps, "config">, ip: string): FailureWindow | null {
  const limit = deps.config.rateLimit.webhookFailures;
  if (limit <= 0) return null;
  const { key, reset } = rateWindow(SCOPE, ip);
  return { key, limit, reset };
}

/** 429 when the window's item, as read, is at the limit. */
export function refuseIfOver(window: FailureWindow, item: Record<string, unknown> | undefined): void {
  if (typeof item?.count === "number" && item.count >= window.limit) throw new RateLimitedError(window.reset);
}

/** Reads the window on its own and refuses a sender at the limit (before its body is read). */
export async function refuseIfFailing(deps: Pick<Deps, "store" | "config">, ip: string): Promise<void> {
  const window = failureWindow(deps, ip);
  if (window) refuseIfOver(window, await deps.store.get(window.key));
}

export async function countFailure(deps: Pick<Deps, "store" | "config">, ip: string): Promise<void> {
  if (deps.config.rateLimit.webhookFailures > 0) await countInWindow(deps.store, SCOPE, ip);
}
