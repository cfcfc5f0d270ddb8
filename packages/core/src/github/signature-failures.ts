import { RateLimitedError } from "../errors.ts";
import { countInWindow, rateWindow } from "../http/middleware/rate-limit.ts";
import type { Deps } from "../ports.ts";

const SCOPE = "webhook-signature-failures";

/**
 * Failed webhook signatures per client IP and minute. A sender over
 * `HOIST_RATE_LIMIT_WEBHOOK_FAILURES` is refused before Hoist reads its body
 * or computes an HMAC (each one costs a pass over up to 10 MB); good
 * deliveries never count, so GitHub itself is never limited by this.
 */
export async function refuseIfFailing(deps: Pick<Deps, "store" | "config">, ip: string): Promise<void> {
  const limit = deps.config.rateLimit.webhookFailures;
  if (limit <= 0) return;
  const { key, reset } = rateWindow(SCOPE, ip);
  const item = await deps.store.get<{ pk: string; sk: string; count: number }>(key);
  if ((item?.count ?? 0) >= limit) throw new RateLimitedError(reset);
}

export async function countFailure(deps: Pick<Deps, "store" | "config">, ip: string): Promise<void> {
  if (deps.config.rateLimit.webhookFailures > 0) await countInWindow(deps.store, SCOPE, ip);
}
