import type { Context } from "hono";
import { ForbiddenError } from "../errors.ts";
import type { AppEnv } from "../http/env.ts";
import type { Role } from "../users/entity.ts";
import type { Scope } from "./api-token-entity.ts";

/**
 * What each scope lets an API token do. They nest: `deploy` includes `read`,
 * `write` (all the owner may do) includes `deploy`, `admin` includes `write`
 * and, while its user is an admin, the admin routes too.
 */
const IMPLIES: Record<Scope, Scope[]> = {
  read: ["read"],
  deploy: ["read", "deploy"],
  write: ["read", "deploy", "write"],
  admin: ["read", "deploy", "write", "admin"],
};

/** The scopes a token's list grants its user now (an `admin` scope of a demoted user no longer reaches admin routes). */
export function grantedScopes(scopes: readonly Scope[], role: Role): Set<Scope> {
  const granted = new Set(scopes.flatMap((s) => IMPLIES[s]));
  if (role !== "admin") granted.delete("admin");
  return granted;
}

/** The scope table. Reads need `read`; these operations of running apps need `deploy`; every other mutation `write`. */
const DEPLOY_ROUTES = [
  /^\/api\/apps\/[^/]+\/(deployments|start|stop|extend)\/?$/,
  /^\/api\/deployments\/[^/]+\/(cancel|redeploy)\/?$/,
];
/** Reads that reveal secrets are not plain reads: `GET /api/apps/:id/env?reveal=true` needs `write`. */
const REVEAL_ROUTE = /^\/api\/apps\/[^/]+\/env\/?$/;
const READ_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** The scope a request needs, from its method and path (admin-only routes add `admin`, see requireRole). */
export function requiredScope(method: string, path: string, query: (name: string) => string | undefined): Scope {
  if (READ_METHODS.has(method)) return REVEAL_ROUTE.test(path) && query("reveal") === "true" ? "write" : "read";
  if (method === "POST" && DEPLOY_ROUTES.some((r) => r.test(path))) return "deploy";
  return "write";
}

/** 403 naming the scope, when the request's API token lacks it. Sign-in sessions (JWT) have every scope. */
export function assertScope(c: Context<AppEnv>, scope: Scope): void {
  const token = c.var.apiToken;
  if (!token || token.granted.has(scope)) return;
  throw new ForbiddenError(
    `This API token lacks the "${scope}" scope (it has: ${token.scopes.join(", ")}); create one with "${scope}"`,
  );
}

/** The role the request acts with: an admin's token without the `admin` scope acts as a member. */
export function effectiveRole(c: Context<AppEnv>): Role {
  const token = c.var.apiToken;
  return c.var.user.role === "admin" && (!token || token.granted.has("admin")) ? "admin" : "member";
}

/**
 * Whether a socket opened with an API token (its `scopes`; none: a sign-in
 * session) may subscribe: every channel is a read, and `logs:all`, an admin's
 * channel, needs `admin` too.
 */
export function socketMaySubscribe(scopes: readonly Scope[] | undefined, role: Role, channel: string): boolean {
  if (!scopes) return true;
  const granted = grantedScopes(scopes, role);
  return granted.has("read") && (channel !== "logs:all" || granted.has("admin"));
}

/** The role a socket acts with: an admin's, through a token without the `admin` scope, is a member's (as effectiveRole). */
export function socketRole(scopes: readonly Scope[] | undefined, role: Role): Role {
  return !scopes || grantedScopes(scopes, role).has("admin") ? role : "member";
}
