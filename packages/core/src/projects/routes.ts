import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { actorOf } from "../actor.ts";
import { requireUser } from "../auth/middleware.ts";
import type { AppEnv } from "../http/env.ts";
import { idParam } from "../http/ids.ts";
import { listResponse, OwnedListQuery } from "../http/list.ts";
import { bearer, changesOf, jsonBody, jsonContent, pageOf, problems } from "../http/openapi.ts";
import { validationHook } from "../http/problem.ts";
import { toProject } from "./entity.ts";
import { createProject, deleteProject, getProjectItem, listProjects, updateProject } from "./service.ts";

const ProjectSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    description: z.string(),
    createdAt: z.number().int(),
    updatedAt: z.number().int(),
  })
  .openapi("Project");
const fields = { name: z.string().trim().min(1).max(100), description: z.string().max(2000) };
const IdParam = idParam("prj");
const auth = { security: bearer, middleware: [requireUser], tags: ["projects"] };

export const projectRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      ...auth,
      method: "get",
      path: "/api/projects",
      summary: "Your projects (`?format=array` for a bare array)",
      request: { query: OwnedListQuery },
      responses: {
        200: jsonContent(z.union([pageOf(ProjectSchema), z.array(ProjectSchema)]), "Projects"),
        ...problems(400, 401),
      },
    }),
    async (c) => {
      const q = c.req.valid("query");
      return listResponse(c, q.format, (cursor, limit) => listProjects(c.var.deps, c.var.user.id, cursor, limit), q);
    },
  )
  .openapi(
    createRoute({
      ...auth,
      method: "post",
      path: "/api/projects",
      summary: "Create a project",
      request: { body: jsonBody(z.object(fields).partial({ description: true }).strict()) },
      responses: { 201: jsonContent(ProjectSchema, "Created"), ...problems(400, 401) },
    }),
    async (c) => c.json(await createProject(c.var.deps, actorOf(c), c.req.valid("json")), 201),
  )
  .openapi(
    createRoute({
      ...auth,
      method: "get",
      path: "/api/projects/{id}",
      summary: "One project",
      request: { params: IdParam },
      responses: { 200: jsonContent(ProjectSchema, "The project"), ...problems(401, 404) },
    }),
    async (c) => c.json(toProject(await getProjectItem(c.var.deps, c.var.user.id, c.req.valid("param").id)), 200),
  )
  .openapi(
    createRoute({
      ...auth,
      method: "put",
      path: "/api/projects/{id}",
      summary: "Rename or describe a project",
      request: {
        params: IdParam,
        body: jsonBody(changesOf(fields)),
      },
      responses: { 200: jsonContent(ProjectSchema, "Updated"), ...problems(400, 401, 404) },
    }),
    async (c) => c.json(await updateProject(c.var.deps, actorOf(c), c.req.valid("param").id, c.req.valid("json")), 200),
  )
  .openapi(
    createRoute({
      ...auth,
      method: "delete",
      path: "/api/projects/{id}",
      summary: "Delete a project and its apps (running apps: 409 unless ?force=true)",
      request: { params: IdParam, query: z.object({ force: z.enum(["true", "false"]).default("false") }) },
      responses: {
        200: jsonContent(
          z.object({
            success: z.literal(true),
            appsDeleted: z.number().int(),
            leftRunning: z.array(z.object({ id: z.string(), name: z.string() })),
          }),
          "Deleted",
        ),
        ...problems(401, 404, 409),
      },
    }),
    async (c) =>
      c.json(
        await deleteProject(c.var.deps, actorOf(c), c.req.valid("param").id, c.req.valid("query").force === "true"),
        200,
      ),
  );
