import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { actorOf } from "../actor.ts";
import { requireUser } from "../auth/middleware.ts";
import { FULL_NAME } from "../github/repos.ts";
import type { AppEnv } from "../http/env.ts";
import { bearer, jsonContent, PageQuery, pageOf, problems } from "../http/openapi.ts";
import { validationHook } from "../http/problem.ts";
import { listRuns, rerunWorkflow } from "./service.ts";

export const WorkflowRunSchema = z
  .object({
    id: z.string().openapi({ description: "GitHub's run id" }),
    repo: z.string(),
    workflowId: z.number().int(),
    workflowName: z.string(),
    branch: z.string(),
    headSha: z.string(),
    event: z.string(),
    status: z.string(),
    conclusion: z.string().nullable(),
    htmlUrl: z.string().nullable(),
    runNumber: z.number().int(),
    runAttempt: z.number().int(),
    createdAt: z.number().int(),
    updatedAt: z.number().int(),
    runStartedAt: z.number().int().nullable(),
  })
  .openapi("WorkflowRun");

const RunStatus = z.enum(["requested", "queued", "in_progress", "waiting", "pending", "completed"]);
const Conclusion = z.enum([
  "success",
  "failure",
  "neutral",
  "cancelled",
  "skipped",
  "timed_out",
  "action_required",
  "stale",
  "startup_failure",
]);
const auth = { security: bearer, middleware: [requireUser], tags: ["github"] };

export const workflowRunRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      ...auth,
      method: "get",
      path: "/api/workflow-runs",
      summary: "Workflow runs of the repositories you connected, newest first",
      request: {
        query: PageQuery.extend({
          repo: z.string().regex(FULL_NAME, "owner/repo").optional(),
          status: RunStatus.optional(),
          conclusion: Conclusion.optional(),
        }),
      },
      responses: { 200: jsonContent(pageOf(WorkflowRunSchema), "Runs"), ...problems(400, 401) },
    }),
    async (c) => c.json(await listRuns(c.var.deps, c.var.user.id, c.req.valid("query")), 200),
  )
  .openapi(
    createRoute({
      ...auth,
      method: "post",
      path: "/api/workflow-runs/{id}/rerun",
      summary: "Ask GitHub to re-run the run (or only its failed jobs) with your linked token",
      request: {
        params: z.object({ id: z.string().regex(/^\d{1,20}$/, "a GitHub run id") }),
        body: {
          required: false,
          content: { "application/json": { schema: z.object({ failedOnly: z.boolean().default(false) }).strict() } },
        },
      },
      responses: {
        202: jsonContent(
          z.object({
            run: WorkflowRunSchema,
            rerun: z.object({ failedOnly: z.boolean(), requestedAt: z.number().int() }),
          }),
          "GitHub accepted the re-run",
        ),
        ...problems(400, 401, 404, 409, 502),
      },
    }),
    async (c) => {
      const body = c.req.header("content-type") ? c.req.valid("json") : { failedOnly: false };
      const { id } = c.req.valid("param");
      return c.json(await rerunWorkflow(c.var.deps, c.var.user, actorOf(c), id, body.failedOnly), 202);
    },
  );
