import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { actorOf } from "../actor.ts";
import { requireUser } from "../auth/middleware.ts";
import { FULL_NAME } from "../github/repos.ts";
import type { AppEnv } from "../http/env.ts";
import { idParam } from "../http/ids.ts";
import { bearer, jsonBody, jsonContent, PageQuery, pageOf, problems } from "../http/openapi.ts";
import { validationHook } from "../http/problem.ts";
import { toIncident } from "./entity.ts";
import { addComment, getIncidentItem, listComments, listIncidents, transitionIncident } from "./service.ts";
import { INCIDENT_STATUSES } from "./state-machine.ts";

const Status = z.enum(INCIDENT_STATUSES);
const IncidentSchema = z
  .object({
    id: z.string(),
    status: Status,
    title: z.string(),
    repo: z.string(),
    workflowId: z.number().int(),
    workflowName: z.string(),
    branch: z.string(),
    runIds: z.array(z.string()).openapi({ description: "GitHub run ids linked to the incident, oldest first" }),
    lastRunId: z.string(),
    lastRunUrl: z.string().nullable(),
    openedAt: z.number().int(),
    acknowledgedAt: z.number().int().nullable(),
    resolvedAt: z.number().int().nullable(),
    updatedAt: z.number().int(),
  })
  .openapi("Incident");
const CommentSchema = z
  .object({
    id: z.string(),
    incidentId: z.string(),
    authorId: z.string().nullable(),
    kind: z.enum(["user", "system"]),
    body: z.string(),
    createdAt: z.number().int(),
  })
  .openapi("IncidentComment");
const IdParam = idParam("inc");
const auth = { security: bearer, middleware: [requireUser], tags: ["incidents"] };

export const incidentRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      ...auth,
      method: "get",
      path: "/api/incidents",
      summary: "Your incidents, newest first",
      request: {
        query: PageQuery.extend({
          status: Status.optional(),
          repo: z.string().regex(FULL_NAME, "owner/repo").optional(),
        }),
      },
      responses: { 200: jsonContent(pageOf(IncidentSchema), "Incidents"), ...problems(400, 401) },
    }),
    async (c) => c.json(await listIncidents(c.var.deps, c.var.user.id, c.req.valid("query")), 200),
  )
  .openapi(
    createRoute({
      ...auth,
      method: "get",
      path: "/api/incidents/{id}",
      summary: "One incident",
      request: { params: IdParam },
      responses: { 200: jsonContent(IncidentSchema, "The incident"), ...problems(401, 404) },
    }),
    async (c) => c.json(toIncident(await getIncidentItem(c.var.deps, c.var.user.id, c.req.valid("param").id)), 200),
  )
  .openapi(
    createRoute({
      ...auth,
      method: "post",
      path: "/api/incidents/{id}/transition",
      summary: "Move the incident: open → acknowledged | resolved, acknowledged → resolved, resolved → open",
      request: { params: IdParam, body: jsonBody(z.object({ to: Status }).strict()) },
      responses: {
        200: jsonContent(IncidentSchema, "Moved"),
        ...problems(400, 401, 404, 409),
      },
    }),
    async (c) => {
      const actor = actorOf(c);
      const { id } = c.req.valid("param");
      return c.json(await transitionIncident(c.var.deps, actor.userId, id, c.req.valid("json").to, actor), 200);
    },
  )
  .openapi(
    createRoute({
      ...auth,
      method: "get",
      path: "/api/incidents/{id}/comments",
      summary: "The incident's comments, oldest first (system comments included)",
      request: { params: IdParam, query: PageQuery },
      responses: { 200: jsonContent(pageOf(CommentSchema), "Comments"), ...problems(400, 401, 404) },
    }),
    async (c) =>
      c.json(await listComments(c.var.deps, c.var.user.id, c.req.valid("param").id, c.req.valid("query")), 200),
  )
  .openapi(
    createRoute({
      ...auth,
      method: "post",
      path: "/api/incidents/{id}/comments",
      summary: "Comment on the incident",
      request: {
        params: IdParam,
        body: jsonBody(z.object({ body: z.string().trim().min(1).max(5000) }).strict()),
      },
      responses: { 201: jsonContent(CommentSchema, "Added"), ...problems(400, 401, 404) },
    }),
    async (c) =>
      c.json(await addComment(c.var.deps, actorOf(c), c.req.valid("param").id, c.req.valid("json").body), 201),
  );
