import type { OpenAPIHono } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { ValidationError } from "../../errors.ts";
import type { AppEnv } from "../env.ts";

interface RouteQuery {
  method: string;
  pattern: RegExp;
  /** The query parameters the route declares; undefined: not known (not checked). */
  allowed: Set<string> | undefined;
}

/**
 * An unknown query parameter is a 400 naming it, never silently ignored: a
 * misspelt filter (`?stauts=`) or a parameter of another route (`?cursor=` on
 * the logs route, which pages with `after`) would otherwise answer as if it
 * were not there. The declared parameters are read from the OpenAPI registry
 * (the routes' zod query schemas), once, at the first request.
 */
export function rejectUnknownQuery(app: OpenAPIHono<AppEnv>): MiddlewareHandler<AppEnv> {
  let routes: RouteQuery[] | undefined;
  return async (c, next) => {
    const query = c.req.queries();
    const names = Object.keys(query);
    if (names.length === 0) return next();
    routes ??= compile(app);
    const method = c.req.method.toLowerCase();
    const route = routes.find((r) => r.method === method && r.pattern.test(c.req.path));
    const allowed = route?.allowed;
    if (!allowed) return next();
    const unknown = names.filter((n) => !allowed.has(n));
    if (unknown.length > 0) {
      throw new ValidationError(
        `Unknown query parameter${unknown.length > 1 ? "s" : ""}: ${unknown.join(", ")}`,
        unknown.map((n) => ({
          path: `query.${n}`,
          message:
            allowed.size > 0 ? `Not a parameter here (known: ${[...allowed].join(", ")})` : "This route takes none",
        })),
      );
    }
    return next();
  };
}

function compile(app: OpenAPIHono<AppEnv>): RouteQuery[] {
  const routes: RouteQuery[] = [];
  for (const def of app.openAPIRegistry.definitions) {
    if (def.type !== "route") continue;
    const { method, path, request } = def.route;
    const pattern = new RegExp(`^${path.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\\?\{[^}]+\\?\}/g, "[^/]+")}/?$`);
    routes.push({ method, pattern, allowed: request?.query ? keysOf(request.query) : new Set() });
  }
  return routes;
}

/** The keys of a zod object schema (also behind refinements); undefined when the shape cannot be read. */
function keysOf(schema: unknown): Set<string> | undefined {
  const shape = (schema as { shape?: Record<string, unknown> }).shape;
  return shape && typeof shape === "object" ? new Set(Object.keys(shape)) : undefined;
}
