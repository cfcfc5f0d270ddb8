import type { Context, MiddlewareHandler } from "hono";
import { authKeys } from "../../auth/entity.ts";
import { RateLimitedError } from "../../errors.ts";
import type { Store } from "../../store/store.ts";
import type { AppEnv } from "../env.ts";
import { clientIp } from "./client-ip.ts";

const WINDOW_SECONDS = 60;

/**
 * Fixed one-minute windows counted atomically in the table (UpdateItem ADD,
 * TTL), so every Lambda instance shares them. Sets `RateLimit-*` headers;
 * over the limit → 429 with `Retry-After`. A limit of 0 turns it off.
 */
export async function consumeRateLimit(c: Context<AppEnv>, scope: string, who: string, limit: number): Promise<void> {
  if (limit <= 0) return;
  judgeRateLimit(c, limit, await countInWindow(c.var.deps.store, scope, who));
}

/** consumeRateLimit's verdict on a window already counted (for a limit known only after counting). */
export function judgeRateLimit(c: Context<AppEnv>, limit: number, { count, reset }: { count: number; reset: number }) {
  if (limit <= 0) return;
  const headers = {
    "RateLimit-Limit": String(limit),
    "RateLimit-Remaining": String(Math.max(0, limit - count)),
    "RateLimit-Reset": String(reset),
  };
  for (const [k, v] of Object.entries(headers)) c.header(k, v);
  if (count > limit) throw new RateLimitedError(reset, headers);
}

/** The current one-minute window of `who` in `scope`: its key, and the seconds until the next one. */
export function rateWindow(scope: string, who: string) {
  const now = Math.floor(Date.now() / 1000);
  const window = Math.floor(now / WINDOW_SECONDS);
  return { key: authKeys.rate(scope, who, window), window, reset: (window + 1) * WINDOW_SECONDS - now };
}

/** Counts one event in the current window (UpdateItem ADD, TTL); answers the count so far. */
export async function countInWindow(store: Pick<Store, "update">, scope: string, who: string) {
  const { key, window, reset } = rateWindow(scope, who);
  const item = await store.update<{ pk: string; sk: string; count: number }>(key, {
    add: { count: 1 },
    set: { entity: "rate-window", expiresAt: (window + 2) * WINDOW_SECONDS },
  });
  return { count: item.count, reset };
}

/** Per client IP; `kind` picks the configured limit (`HOIST_RATE_LIMIT_AUTH`, `_REFRESH` or `_API`). */
export function rateLimitByIp(kind: "auth" | "refresh" | "api"): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    await consumeRateLimit(c, `${kind}-ip`, clientIp(c), c.var.deps.config.rateLimit[kind]);
    await next();
  };
}
