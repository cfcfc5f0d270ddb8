import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { actorOf } from "../actor.ts";
import { requireUser } from "../auth/middleware.ts";
import type { AppEnv } from "../http/env.ts";
import { idOf, idParam } from "../http/ids.ts";
import { idempotent } from "../http/middleware/idempotency.ts";
import { bearer, jsonContent, PageQuery, pageOf, problems } from "../http/openapi.ts";
import { validationHook } from "../http/problem.ts";
import { toDeployment } from "./entity.ts";
import { storedLines } from "./log-chunks.ts";
import { cancelDeployment, deployApp, getDeploymentItem, listDeployments, redeploy } from "./service.ts";

const Status = z.enum(["queued", "running", "succeeded", "failed", "cancelled"]);
const DeploymentSchema = z
  .object({
    id: z.string(),
    appId: z.string(),
    status: Status,
    trigger: z.enum(["manual", "push", "ci-success", "rollback"]),
    ref: z.string().nullable(),
    commitSha: z.string().nullable(),
    commitMessage: z.string().nullable(),
    author: z.string().nullable(),
    queuedAt: z.number().int(),
    startedAt: z.number().int().nullable(),
    finishedAt: z.number().int().nullable(),
    durationMs: z.number().int().nullable(),
    exitCode: z.number().int().nullable(),
    error: z.string().nullable(),
    redeployOf: z.string().nullable(),
  })
  .openapi("Deployment");
const LogLineSchema = z.object({
  seq: z.number().int(),
  ts: z.number().int(),
  stream: z.enum(["stdout", "stderr", "system"]),
  line: z.string(),
});
const Wrapped = z.object({ deployment: DeploymentSchema });
const IdParam = idParam("dep");
/** Seqs are stored in 10 digits. */
const MAX_SEQ = 9_999_999_998;
const auth = { security: bearer, middleware: [requireUser], tags: ["deployments"] };
const triggering = { security: bearer, middleware: [requireUser, idempotent], tags: ["deployments"] };

export const deploymentRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      ...triggering,
      method: "post",
      path: "/api/apps/{id}/deployments",
      summary: "Deploy the app now (`Idempotency-Key` honoured)",
      request: {
        params: idParam("app"),
        body: {
          required: false,
          content: {
            "application/json": {
              schema: z
                .object({
                  ref: z.string().min(1).max(255).optional(),
                  sha: z
                    .string()
                    .regex(/^[0-9a-f]{7,64}$/i, "a commit sha")
                    .optional(),
                })
                .strict(),
            },
          },
        },
      },
      responses: { 202: jsonContent(Wrapped, "Queued"), ...problems(400, 401, 402, 404, 409) },
    }),
    async (c) => {
      const body = c.req.header("content-type") ? c.req.valid("json") : {};
      return c.json({ deployment: await deployApp(c.var.deps, actorOf(c), c.req.valid("param").id, body) }, 202);
    },
  )
  .openapi(
    createRoute({
      ...auth,
      method: "get",
      path: "/api/deployments",
      summary: "Your deployments, newest first",
      request: { query: PageQuery.extend({ appId: idOf("app").optional(), status: Status.optional() }) },
      responses: { 200: jsonContent(pageOf(DeploymentSchema), "Deployments"), ...problems(400, 401, 404) },
    }),
    async (c) => c.json(await listDeployments(c.var.deps, c.var.user.id, c.req.valid("query")), 200),
  )
  .openapi(
    createRoute({
      ...auth,
      method: "get",
      path: "/api/deployments/{id}",
      summary: "One deployment",
      request: { params: IdParam },
      responses: { 200: jsonContent(DeploymentSchema, "The deployment"), ...problems(401, 404) },
    }),
    async (c) => c.json(toDeployment(await getDeploymentItem(c.var.deps, c.var.user.id, c.req.valid("param").id)), 200),
  )
  .openapi(
    createRoute({
      ...auth,
      method: "get",
      path: "/api/deployments/{id}/logs",
      summary: "Log lines after `after` (a seq), in order",
      request: {
        params: IdParam,
        query: z.object({
          after: z.coerce.number().int().min(0).max(MAX_SEQ).default(0),
          limit: z.coerce.number().int().min(1).max(1000).default(500),
        }),
      },
      responses: {
        200: jsonContent(z.object({ items: z.array(LogLineSchema), nextCursor: z.string().nullable() }), "Lines"),
        ...problems(400, 401, 404),
      },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const id = c.req.valid("param").id;
      await getDeploymentItem(c.var.deps, c.var.user.id, id);
      const { lines, more } = await storedLines(c.var.deps, id, q.after, q.limit);
      return c.json({ items: lines, nextCursor: more ? String(lines.at(-1)?.seq) : null }, 200);
    },
  )
  .openapi(
    createRoute({
      ...triggering,
      method: "post",
      path: "/api/deployments/{id}/cancel",
      summary: "Cancel: a queued one at once, a running one by stopping its command",
      request: { params: IdParam },
      responses: { 200: jsonContent(Wrapped, "Cancelled or cancelling"), ...problems(401, 404, 409) },
    }),
    async (c) => c.json({ deployment: await cancelDeployment(c.var.deps, actorOf(c), c.req.valid("param").id) }, 200),
  )
  .openapi(
    createRoute({
      ...triggering,
      method: "post",
      path: "/api/deployments/{id}/redeploy",
      summary: "Deploy the same commit again (a rollback when it is an older deployment)",
      request: { params: IdParam },
      responses: { 202: jsonContent(Wrapped, "Queued"), ...problems(401, 402, 404) },
    }),
    async (c) => c.json({ deployment: await redeploy(c.var.deps, actorOf(c), c.req.valid("param").id) }, 202),
  );
