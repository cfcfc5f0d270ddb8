import { authKeys } from "../auth/entity.ts";
import { RateLimitedError } from "../errors.ts";
import type { Deps } from "../ports.ts";

const WINDOW_SECONDS = 60;

/**
 * Failed webhook signatures per client IP and minute. A sender over
 * `HOIST_RATE_LIMIT_WEBHOOK_FAILURES` is refused before Hoist reads its body
 * or computes an HMAC (each one costs a pass over up to 10 MB); good
 * deliveries never count, so GitHub itself is never limited by this.
 */
export async function refuseIfFailing(deps: Pick<Deps, "store" | "config">, ip: string): Promise<void> {
  const limit = deps.config.rateLimit.webhookFailures;
  if (limit <= 0) return;
  const { key, reset } = windowOf(ip);
  const item = await deps.store.get<{ pk: string; sk: string; count: number }>(key);
  if ((item?.count ?? 0) >= limit) throw new RateLimitedError(reset);
}

export async function countFailure(deps: Pick<Deps, "store" | "config">, ip: string): Promise<void> {
  if (deps.config.rateLimit.webhookFailures <= 0) return;
  const { key, window } = windowOf(ip);
  await deps.store.update(key, {
    add: { count: 1 },
    set: { entity: "rate-window", expiresAt: (window + 2) * WINDOW_SECONDS },
  });
}

function windowOf(ip: string) {
  const now = Math.floor(Date.now() / 1000);
  const window = Math.floor(now / WINDOW_SECONDS);
  return {
    key: authKeys.rate("webhook-signature-failures", ip, window),
    window,
    reset: (window + 1) * WINDOW_SECONDS - now,
  };
}
