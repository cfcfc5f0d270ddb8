import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { AppEnv } from "../http/env.ts";
import { noAuth } from "../http/openapi.ts";
import { problem, validationHook } from "../http/problem.ts";

const Status = z.object({ status: z.enum(["ok", "unavailable"]) }).openapi("HealthStatus");

const health = createRoute({
  method: "get",
  path: "/health",
  tags: ["health"],
  security: noAuth,
  summary: "The service answers",
  responses: { 200: { description: "Up", content: { "application/json": { schema: Status } } } },
});

const live = createRoute({ ...health, path: "/health/live", summary: "The process is alive" });

const ready = createRoute({
  method: "get",
  path: "/health/ready",
  tags: ["health"],
  security: noAuth,
  summary: "The table is reachable",
  responses: {
    200: { description: "Ready", content: { "application/json": { schema: Status } } },
    503: { description: "The table is unreachable" },
  },
});

export const healthRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(health, (c) => c.json({ status: "ok" as const }, 200))
  .openapi(live, (c) => c.json({ status: "ok" as const }, 200))
  .openapi(ready, async (c) => {
    try {
      await c.var.deps.store.ping();
      return c.json({ status: "ok" as const }, 200);
    } catch (err) {
      c.var.logger.warn("readiness check failed", { error: err });
      c.header("Retry-After", "5");
      return problem(c, 503, "The table is unreachable");
    }
  });
