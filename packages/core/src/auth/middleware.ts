import type { Context, MiddlewareHandler } from "hono";
import { recordAudit } from "../audit/service.ts";
import { ForbiddenError, UnauthorizedError } from "../errors.ts";
import type { AppEnv } from "../http/env.ts";
import { clientIp } from "../http/middleware/client-ip.ts";
import { consumeRateLimit, countInWindow, judgeRateLimit } from "../http/middleware/rate-limit.ts";
import type { Deps } from "../ports.ts";
import type { Role, UserItem } from "../users/entity.ts";
import type { ApiTokenItem } from "./api-token-entity.ts";
import { acceptApiToken, findApiToken, isApiToken, tokenUser } from "./api-tokens.ts";
import { assertScope, requiredScope } from "./scopes.ts";
import { type AccessClaims, authenticateJwt } from "./tokens.ts";

const bearerToken = (header: string) => /^Bearer ([A-Za-z0-9._~+/-]+=*)$/i.exec(header.trim())?.[1];
const MUTATIONS = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/**
 * The first round trip of a bearer token's check: an access token's
 * blocklist entry and user (one BatchGetItem), or an API token's item (one
 * GetItem by the hash of the secret; it names the user, read next).
 */
export type BearerCheck = { claims: AccessClaims; user: UserItem } | { apiTokenItem: ApiTokenItem };

const firstCheck = (deps: Deps, token: string): Promise<BearerCheck> =>
  isApiToken(token)
    ? findApiToken(deps, token).then((apiTokenItem) => ({ apiTokenItem }))
    : authenticateJwt(deps, token);

/**
 * Starts checking the request's bearer token, if it has one, so the check's
 * first round trip runs alongside whatever comes before `requireUser` (the
 * per-IP rate window). `requireUser` takes the answer; a route without it never looks.
 */
export function startAuthentication(c: Context<AppEnv>): void {
  const token = bearerToken(c.req.header("authorization") ?? "");
  if (!token) return;
  const pending = firstCheck(c.var.deps, token);
  pending.catch(() => undefined); // awaited (and thrown) by requireUser, if the route has it
  c.set("authenticating", pending);
}

/**
 * Authenticates the bearer token and loads the user on every request, so a
 * disabled user, a changed role or a revoked API token takes effect at once.
 * Two awaited round trips at most (alongside the per-IP rate window, see
 * startAuthentication):
 * - access token (JWT): the blocklist and the user in one BatchGetItem, then the per-user rate window;
 * - API token: its item by hash, then its user and the per-user rate window together (the item names the user).
 * An API token must hold the scope the route needs (auth/scopes.ts); each
 * mutation it makes is audited (`token.use`). The request is counted for
 * `GET /api/usage` by the usage meter, which writes in the background.
 * The per-user window allows the user's plan's `requestsPerMinute`, or
 * HOIST_RATE_LIMIT_API where the plan sets none; HOIST_RATE_LIMIT_API=0 turns
 * both off (load tests), and so does a plan's 0.
 */
export const requireUser: MiddlewareHandler<AppEnv> = async (c, next) => {
  const header = c.req.header("authorization") ?? "";
  const token = bearerToken(header);
  if (!token) throw new UnauthorizedError(header ? "Malformed Authorization header" : "Authentication required");
  const deps = c.var.deps;
  const limited = deps.config.rateLimit.api > 0;
  const limitOf = (user: UserItem) =>
    limited ? (deps.config.plans.get(user.plan).limits.requestsPerMinute ?? deps.config.rateLimit.api) : 0;
  const first = await (c.var.authenticating ?? firstCheck(deps, token));
  if ("claims" in first) {
    c.set("claims", first.claims);
    c.set("user", first.user);
    deps.usage.count(first.user.id);
    await consumeRateLimit(c, "api-user", first.user.id, limitOf(first.user));
    return next();
  }

  // The token's item names the user: the user and the window are read together, the window judged by the user's plan.
  const item = first.apiTokenItem;
  const [owner, window] = await Promise.allSettled([
    tokenUser(deps, item),
    limited ? countInWindow(deps.store, "api-user", item.userId) : undefined,
  ]);
  if (owner.status === "rejected") throw owner.reason;
  const { user, apiToken } = acceptApiToken(deps, item, owner.value);
  c.set("user", user);
  c.set("apiToken", apiToken);
  deps.usage.count(user.id);
  if (window.status === "rejected") throw window.reason;
  if (window.value) judgeRateLimit(c, limitOf(user), window.value);
  assertScope(
    c,
    requiredScope(c.req.method, c.req.path, (name) => c.req.query(name)),
  );
  await next();
  if (MUTATIONS.has(c.req.method) && c.res.status < 400) await auditTokenUse(c, apiToken.id);
};

/** Every mutation made with an API token names the token in the audit log, whatever its module records. */
async function auditTokenUse(c: Context<AppEnv>, tokenId: string): Promise<void> {
  const entry = {
    userId: c.var.user.id,
    action: "token.use",
    resourceType: "api-token",
    resourceId: tokenId,
    details: { method: c.req.method, path: c.req.path, status: c.res.status },
    ipAddress: clientIp(c),
  };
  try {
    await recordAudit(c.var.deps, entry);
  } catch (err) {
    // The mutation is done and answered as such; the missing entry is not silent.
    c.var.logger.error("token.use audit entry not written", { error: err, ...entry });
  }
}

/** Only users of `role`; an API token also needs the `admin` scope for admin routes. */
export function requireRole(role: Role): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (c.var.user.role !== role) throw new ForbiddenError(`Only ${role}s may do this`);
    if (role === "admin") assertScope(c, "admin");
    await next();
  };
}
