import type { OpenAPIHono } from "@hono/zod-openapi";
import { Hono } from "hono";
import { cors } from "hono/cors";
import { requestId } from "hono/request-id";
import { secureHeaders } from "hono/secure-headers";
import { startAuthentication } from "../auth/middleware.ts";
import { withFields } from "../logger.ts";
import type { Deps } from "../ports.ts";
import { publish, subscribers } from "../realtime/publish.ts";
import type { AppEnv } from "./env.ts";
import { limitBody, requireJsonBody } from "./middleware/json-body.ts";
import { rejectUnknownQuery } from "./middleware/known-query.ts";
import { allowedMethods } from "./middleware/method-not-allowed.ts";
import { rateLimitByIp } from "./middleware/rate-limit.ts";
import { type RequestRecord, requestLog } from "./middleware/request-log.ts";
import { onError, problem, validationHook } from "./problem.ts";
import { groupOf, loadGroup, ROUTE_GROUPS, type RouteGroup, type Routes } from "./route-groups.ts";

const WEBHOOK_BODY_LIMIT = 10 * 1024 * 1024;
/** Where passwords are tried or tokens issued: `HOIST_RATE_LIMIT_AUTH` per client IP. */
const CREDENTIAL_ROUTES = /^\/api\/auth\/(register|login|(github|oidc)\/(login|callback))\/?$/;
/** Token refreshes: every open tab refreshes every 15 minutes, so they get a limit of their own. */
const REFRESH_ROUTE = /^\/api\/auth\/refresh\/?$/;

export interface HttpAppOptions {
  /** Sees one record per request (method, path, status, duration): the `logs:all` stream. */
  onRequest?: (record: RequestRecord) => void;
}

/**
 * The admins' live request log (`logs:all`), best effort. Whether anyone
 * listens is looked up at most once a second, so requests pay nothing while
 * nobody does; the post is awaited, because a Lambda freezes once it answers.
 */
function requestLogStream(deps: Deps) {
  let checkedAt = 0;
  let listening = false;
  return {
    async publish(record: RequestRecord): Promise<void> {
      try {
        if (Date.now() - checkedAt > 1000) {
          checkedAt = Date.now();
          listening = (await subscribers(deps, "logs:all")).length > 0;
        }
        if (listening) await publish(deps, "logs:all", [{ type: "request", ...record }]);
      } catch (err) {
        deps.logger.warn("request log publish failed", { error: err });
      }
    },
  };
}

/**
 * The whole HTTP API, served by Lambda (`handle(app)`) and by the embedded
 * runtime alike. Each route group (route-groups.ts) is a Hono app of its own
 * with the same middleware, built on the first request that reaches it, so a
 * Lambda's import carries no route definitions; `ready()` builds them all now.
 */
export function createHttpApp(deps: Deps, opts: HttpAppOptions = {}) {
  const assemble = assembler(deps, opts);
  const apps = new Map<RouteGroup, Promise<OpenAPIHono<AppEnv>>>();
  const appOf = (group: RouteGroup) => {
    let app = apps.get(group);
    if (!app) {
      // zod and its OpenAPI extension come with the first group: the import carries neither.
      app = Promise.all([import("@hono/zod-openapi"), loadGroup(group)]).then(([{ OpenAPIHono }, routes]) =>
        assemble(OpenAPIHono, group, routes),
      );
      // A failed load is not remembered: the next request tries again.
      app.catch(() => apps.delete(group));
      apps.set(group, app);
    }
    return app;
  };

  const front = new Hono<AppEnv>();
  front.all("*", async (c) => (await appOf(groupOf(c.req.path))).fetch(c.req.raw, c.env));
  front.onError((err, c) => {
    c.set("logger", deps.logger);
    return onError(err, c);
  });
  return Object.assign(front, {
    ready: async () => {
      await Promise.all([...(Object.keys(ROUTE_GROUPS) as RouteGroup[]), "none" as const].map(appOf));
    },
  });
}

/** Builds a group's app: the shared middleware (one instance of each, so rate windows and the log stream are shared), its routes, its 404/405. */
function assembler(deps: Deps, opts: HttpAppOptions) {
  const requestStream = requestLogStream(deps);
  // GitHub's push payloads can be large (it caps them at 25 MB; API Gateway at 10 MB).
  const apiBody = limitBody(deps.config.bodyLimitBytes);
  const webhookBody = limitBody(WEBHOOK_BODY_LIMIT);
  // Per client IP: tight where credentials are tried or tokens minted, looser elsewhere
  // (and per user too, in requireUser). A dashboard's verify/me calls are ordinary API calls.
  // GitHub's webhook deliveries are authenticated by signature instead.
  const authLimit = rateLimitByIp("auth");
  const refreshLimit = rateLimitByIp("refresh");
  const apiLimit = rateLimitByIp("api");

  return (Api: typeof OpenAPIHono, group: RouteGroup, routes: Routes[]) => {
    const app = new Api<AppEnv>({ defaultHook: validationHook });
    app.use(
      "*",
      requestId({ headerName: "X-Request-Id" }),
      async (c, next) => {
        c.set("deps", deps);
        // Every line a request logs carries its id.
        c.set("logger", withFields(deps.logger, { requestId: c.get("requestId") }));
        await next();
      },
      requestLog(async (record) => {
        opts.onRequest?.(record);
        if (record.path.startsWith("/api/")) await requestStream.publish(record);
      }),
      secureHeaders(),
    );
    if (deps.config.corsOrigins.length > 0) {
      const origins = deps.config.corsOrigins;
      app.use(
        "/api/*",
        cors({
          origin: origins.includes("*") ? "*" : origins,
          allowHeaders: ["Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id"],
          allowMethods: ["GET", "POST", "PUT", "PATCH", "DELETE"],
          exposeHeaders: ["X-Request-Id", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"],
          maxAge: 600,
          // The dashboard's link call must store the `hoist_oauth` cookie: credentials for listed origins only.
          credentials: !origins.includes("*"),
        }),
      );
    }
    app.use("/api/*", rejectUnknownQuery(app));
    app.use("/api/*", requireJsonBody, (c, next) =>
      (c.req.path.startsWith("/api/webhooks/") ? webhookBody : apiBody)(c, next),
    );
    app.use("/api/*", async (c, next) => {
      if (c.req.path.startsWith("/api/webhooks/")) return next();
      const limit = CREDENTIAL_ROUTES.test(c.req.path)
        ? authLimit
        : REFRESH_ROUTE.test(c.req.path)
          ? refreshLimit
          : apiLimit;
      // The token's check (one BatchGetItem) runs alongside the IP window: two awaited round trips with requireUser's.
      if (limit === apiLimit) startAuthentication(c);
      return limit(c, next);
    });

    for (const moduleRoutes of routes) app.route("/", moduleRoutes);
    if (group === "/openapi.json") describe(app, deps);

    const allowed = allowedMethods(app.routes);
    app.notFound((c) => {
      const methods = allowed(c);
      if (methods.length > 0) {
        return problem(c, 405, `${c.req.method} is not allowed here; use ${methods.join(", ")}`, {
          code: "method_not_allowed",
          headers: { Allow: methods.join(", ") },
        });
      }
      return problem(c, 404, `No route for ${c.req.method} ${c.req.path}`, { code: "not_found" });
    });
    app.onError(onError);
    return app;
  };
}

/** The OpenAPI document at `/openapi.json`, of every route in `app`. */
function describe(app: OpenAPIHono<AppEnv>, deps: Deps) {
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "Hoist API",
      version: "1.0.0",
      description: "Deploy control plane: see API.md for the contract.",
    },
    servers: [{ url: deps.config.publicUrl ?? "/", description: "This Hoist" }],
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    description:
      "An access token (JWT) from sign-in, with every right of its user; or an API token `hst_…` " +
      "(POST /api/tokens), limited to its scopes: an operation outside them is a 403 naming the scope needed.",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "githubSignature", {
    type: "apiKey",
    in: "header",
    name: "X-Hub-Signature-256",
    description: "`sha256=` + the hex HMAC-SHA256 of the raw body with the repository's (or app hook's) webhook secret",
  });
}

export type HttpApp = ReturnType<typeof createHttpApp>;
