import type { Context, MiddlewareHandler } from "hono";
import { ForbiddenError, UnauthorizedError } from "../errors.ts";
import type { AppEnv } from "../http/env.ts";
import { consumeRateLimit } from "../http/middleware/rate-limit.ts";
import type { Role } from "../users/entity.ts";
import { authenticate } from "./tokens.ts";

const bearerToken = (header: string) => /^Bearer ([A-Za-z0-9._~+/-]+=*)$/i.exec(header.trim())?.[1];

/**
 * Starts checking the request's bearer token, if it has one, so the check's
 * BatchGetItem runs alongside whatever comes before `requireUser` (the per-IP
 * rate window). `requireUser` takes the answer; a route without it never looks.
 */
export function startAuthentication(c: Context<AppEnv>): void {
  const token = bearerToken(c.req.header("authorization") ?? "");
  if (!token) return;
  const pending = authenticate(c.var.deps, token);
  pending.catch(() => undefined); // awaited (and thrown) by requireUser, if the route has it
  c.set("authenticating", pending);
}

/**
 * Authenticates the bearer token and loads the user on every request, so a
 * disabled user or a changed role takes effect at once. Two awaited round
 * trips at most: the blocklist and the user in one BatchGetItem (alongside
 * the per-IP rate window, see startAuthentication), then the per-user rate
 * window. The request is counted for `GET /api/usage` by the usage meter,
 * which writes in the background.
 */
export const requireUser: MiddlewareHandler<AppEnv> = async (c, next) => {
  const header = c.req.header("authorization") ?? "";
  const token = bearerToken(header);
  if (!token) throw new UnauthorizedError(header ? "Malformed Authorization header" : "Authentication required");
  const deps = c.var.deps;
  const { claims, user } = await (c.var.authenticating ?? authenticate(deps, token));
  c.set("claims", claims);
  c.set("user", user);
  deps.usage.count(user.id);
  await consumeRateLimit(c, "api-user", user.id, deps.config.rateLimit.api);
  await next();
};

export function requireRole(role: Role): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (c.var.user.role !== role) throw new ForbiddenError(`Only ${role}s may do this`);
    await next();
  };
}
