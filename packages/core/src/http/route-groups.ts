import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Hono } from "hono";
import type { AppEnv } from "./env.ts";

/** A module's routes: OpenAPI-described, or plain Hono (the page, the docs). */
export type Routes = OpenAPIHono<AppEnv> | Hono<AppEnv>;

/**
 * Every route module, loaded on first use: a Lambda instance compiles and
 * builds (zod schemas, OpenAPI definitions) only the groups its requests
 * reach, not the whole API at import. In this order in the OpenAPI document.
 */
export const ROUTE_MODULES = {
  health: () => import("../health/routes.ts").then((m) => m.healthRoutes),
  auth: () => import("../auth/routes.ts").then((m) => m.authRoutes),
  githubAuth: () => import("../auth/github-routes.ts").then((m) => m.githubAuthRoutes),
  oidcAuth: () => import("../auth/oidc-routes.ts").then((m) => m.oidcAuthRoutes),
  apiTokens: () => import("../auth/api-token-routes.ts").then((m) => m.apiTokenRoutes),
  users: () => import("../users/routes.ts").then((m) => m.userRoutes),
  audit: () => import("../audit/routes.ts").then((m) => m.auditRoutes),
  servers: () => import("../servers/routes.ts").then((m) => m.serverRoutes),
  metrics: () => import("../servers/metrics-routes.ts").then((m) => m.metricsRoutes),
  projects: () => import("../projects/routes.ts").then((m) => m.projectRoutes),
  apps: () => import("../apps/routes.ts").then((m) => m.appRoutes),
  templates: () => import("../templates/routes.ts").then((m) => m.templateRoutes),
  operate: () => import("../operate/routes.ts").then((m) => m.operateRoutes),
  deployments: () => import("../deployments/routes.ts").then((m) => m.deploymentRoutes),
  usage: () => import("../usage/routes.ts").then((m) => m.usageRoutes),
  webhooks: () => import("../github/webhook-routes.ts").then((m) => m.webhookRoutes),
  repos: () => import("../github/repo-routes.ts").then((m) => m.repoRoutes),
  workflowRuns: () => import("../workflow-runs/routes.ts").then((m) => m.workflowRunRoutes),
  incidents: () => import("../incidents/routes.ts").then((m) => m.incidentRoutes),
  web: () => import("../web/routes.ts").then((m) => m.webRoutes),
  // Swagger UI: plain routes, nothing in the document; each load its own asset cache.
  docs: () => import("./docs.ts").then((m) => m.docsRoutes()),
} satisfies Record<string, () => Promise<Routes>>;

export type RouteModule = keyof typeof ROUTE_MODULES;

/** Every module, in document order. */
export const ALL_MODULES = Object.keys(ROUTE_MODULES) as RouteModule[];

/**
 * A path's group is its first segment (its first two under `/api/`): the
 * modules listed there define every route whose path starts so, which keeps a
 * group's 404-versus-405 and unknown-query answers whole. A module may sit in
 * several groups (the deployments module also answers `/api/apps/{id}/deployments`).
 * `route-groups.test.ts` checks every route of every module against this table.
 */
export const ROUTE_GROUPS = {
  "/health": ["health"],
  "/api/auth": ["auth", "githubAuth", "oidcAuth"],
  "/api/tokens": ["apiTokens"],
  "/api/users": ["users"],
  "/api/audit-logs": ["audit"],
  "/api/servers": ["servers", "metrics"],
  "/api/projects": ["projects"],
  "/api/apps": ["apps", "operate", "deployments", "webhooks"],
  "/api/templates": ["templates"],
  "/api/deployments": ["deployments"],
  "/api/usage": ["usage"],
  "/api/webhooks": ["webhooks"],
  "/api/github": ["repos"],
  "/api/workflow-runs": ["workflowRuns"],
  "/api/incidents": ["incidents"],
  "/": ["web"],
  "/docs": ["docs"],
  // The document describes every route.
  "/openapi.json": ALL_MODULES,
} satisfies Record<string, RouteModule[]>;

export type RouteGroup = keyof typeof ROUTE_GROUPS | "none";

/** The group that answers `path` (as Hono routes it: decoded); "none" for a path no route can match. */
export function groupOf(path: string): RouteGroup {
  const api = path.startsWith("/api/");
  const end = path.indexOf("/", api ? 5 : 1);
  const key = end === -1 ? path : path.slice(0, end);
  return Object.hasOwn(ROUTE_GROUPS, key) ? (key as keyof typeof ROUTE_GROUPS) : "none";
}

/** The routes of a group's modules, in document order. */
export function loadGroup(group: RouteGroup): Promise<Routes[]> {
  const modules: readonly RouteModule[] = group === "none" ? [] : ROUTE_GROUPS[group];
  return Promise.all(modules.map((name) => ROUTE_MODULES[name]()));
}
