import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { actorOf } from "../actor.ts";
import { requireUser } from "../auth/middleware.ts";
import type { AppEnv } from "../http/env.ts";
import { idParam } from "../http/ids.ts";
import { bearer, jsonContent, PageQuery, pageOf, problems } from "../http/openapi.ts";
import { validationHook } from "../http/problem.ts";
import { metricsHistory, serverMetrics } from "./metrics-service.ts";

const bytes = z.number().int().min(0);

export const MetricsPointSchema = z
  .object({
    cpuPercent: z.number().min(0).max(100).openapi({ description: "Busy share of all CPUs over about 300 ms" }),
    memory: z.object({
      totalBytes: bytes,
      usedBytes: bytes.openapi({ description: "MemTotal − MemAvailable" }),
    }),
    disks: z
      .array(z.object({ mount: z.string(), totalBytes: bytes, usedBytes: bytes }))
      .openapi({ description: "Real filesystems (no tmpfs, overlay, squashfs…), one mount per device" }),
    load: z.tuple([z.number(), z.number(), z.number()]).openapi({ description: "Load average over 1, 5, 15 min" }),
    containers: z
      .array(z.object({ name: z.string(), cpuPercent: z.number().min(0), memoryBytes: bytes }))
      .openapi({ description: "Running containers (`docker stats`); [] without Docker or when it does not answer" }),
    at: z.number().int().openapi({ description: "When it was read (epoch ms)" }),
  })
  .openapi("ServerMetrics");

const epochMs = z.coerce.number().int().min(0).max(8_640_000_000_000_000);
const HistoryQuery = PageQuery.extend({
  from: epochMs.optional().openapi({ description: "Epoch ms, inclusive (default: `to` − 24 h)" }),
  to: epochMs.optional().openapi({ description: "Epoch ms, inclusive (default: now)" }),
});

const IdParam = idParam("srv");
const auth = { security: bearer, middleware: [requireUser], tags: ["servers"] };

export const metricsRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      ...auth,
      method: "get",
      path: "/api/servers/{id}/metrics",
      summary: "Connect now over SSH and read CPU, memory, disks, load and containers",
      description:
        "One SSH command reads /proc, df and `docker stats --no-stream`. An unreachable server is a 502 " +
        "(504 on a timeout), a host key mismatch a 409, a server without /proc (not Linux) a 422.",
      request: { params: IdParam },
      responses: {
        200: jsonContent(MetricsPointSchema, "The server's metrics now"),
        ...problems(400, 401, 403, 404, 409, 422, 502, 504),
      },
    }),
    async (c) => c.json(await serverMetrics(c.var.deps, actorOf(c), c.req.valid("param").id), 200),
  )
  .openapi(
    createRoute({
      ...auth,
      method: "get",
      path: "/api/servers/{id}/metrics/history",
      summary: "The status sweep's metrics points, oldest first",
      description:
        "One point per status sweep while the server answered, kept 7 days. Points with `from ≤ at ≤ to`, " +
        "**oldest first** (ready to plot); page on with `nextCursor` and the same `from`/`to`. " +
        "Default window: the last 24 hours. New points are pushed on the WebSocket channel `server:<id>`.",
      request: { params: IdParam, query: HistoryQuery },
      responses: {
        200: jsonContent(pageOf(MetricsPointSchema), "Points"),
        ...problems(400, 401, 403, 404),
      },
    }),
    async (c) =>
      c.json(await metricsHistory(c.var.deps, actorOf(c), c.req.valid("param").id, c.req.valid("query")), 200),
  );
