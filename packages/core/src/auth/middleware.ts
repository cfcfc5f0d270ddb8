import type { MiddlewareHandler } from "hono";
import { ForbiddenError, UnauthorizedError } from "../errors.ts";
import type { AppEnv } from "../http/env.ts";
import { consumeRateLimit } from "../http/middleware/rate-limit.ts";
import { recordRequest } from "../usage/service.ts";
import type { Role } from "../users/entity.ts";
import { authenticate } from "./tokens.ts";

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
  const { claims, user } = await authenticate(deps, match[1]);
  c.set("claims", claims);
  c.set("user", user);
  // The rate window and the usage meter are two counters, counted at once.
  const metered = recordRequest(deps, user.id).catch((err: unknown) =>
    deps.logger.warn("usage metering failed", { error: err }),
  );
  try {
    await consumeRateLimit(c, "api-user", user.id, deps.config.rateLimit.api);
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
