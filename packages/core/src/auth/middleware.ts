import type { MiddlewareHandler } from "hono";
import { ForbiddenError, UnauthorizedError } from "../errors.ts";
import type { AppEnv } from "../http/env.ts";
import { consumeRateLimit } from "../http/middleware/rate-limit.ts";
import { recordRequest } from "../usage/service.ts";
import type { Role, UserItem } from "../users/entity.ts";
import { userKeys } from "../users/entity.ts";
import { verifyAccessToken } from "./tokens.ts";

/**
 * Authenticates the bearer token and loads the user on every request, so a
 * disabled user or a changed role takes effect at once. Also counts the
 * per-user rate limit.
 */
export const requireUser: MiddlewareHandler<AppEnv> = async (c, next) => {
  const header = c.req.header("authorization") ?? "";
  const match = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/i.exec(header.trim());
  if (!match?.[1]) throw new UnauthorizedError(header ? "Malformed Authorization header" : "Authentication required");
  const deps = c.var.deps;
  const claims = await verifyAccessToken(deps, match[1]);
  const user = await deps.store.get<UserItem>(userKeys.user(claims.sub));
  if (!user) throw new UnauthorizedError("Invalid access token");
  if (user.disabled) throw new UnauthorizedError("Account disabled");
  c.set("claims", claims);
  c.set("user", user);
  await consumeRateLimit(c, "api-user", user.id, deps.config.rateLimit.api);
  // Metered alongside the request, not before it.
  const metered = recordRequest(deps, user.id).catch((err: unknown) =>
    deps.logger.warn("usage metering failed", { error: err }),
  );
  try {
    await next();
  } finally {
    await metered;
  }
};

export function requireRole(role: Role): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (c.var.user.role !== role) throw new ForbiddenError(`Only ${role}s may do this`);
    await next();
  };
}
