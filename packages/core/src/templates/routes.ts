import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { actorOf } from "../actor.ts";
import { requireRole, requireUser } from "../auth/middleware.ts";
import type { AppEnv } from "../http/env.ts";
import { bearer, jsonBody, jsonContent, problems } from "../http/openapi.ts";
import { validationHook } from "../http/problem.ts";
import { TemplateId, TemplateInputSchema, TemplateSchema, TemplateSummarySchema } from "./schemas.ts";
import { createTemplate, deleteTemplate, getTemplate, listTemplates } from "./service.ts";

const auth = { security: bearer, middleware: [requireUser], tags: ["templates"] };
const adminOnly = { ...auth, middleware: [requireUser, requireRole("admin")] };
const IdParam = z.object({ id: TemplateId });

export const templateRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      ...auth,
      method: "get",
      path: "/api/templates",
      summary: "App templates: the built-ins, then the admins' (files listed without their content; not paged)",
      responses: {
        200: jsonContent(z.object({ items: z.array(TemplateSummarySchema), nextCursor: z.null() }), "Templates"),
        ...problems(401),
      },
    }),
    async (c) => c.json({ items: await listTemplates(c.var.deps), nextCursor: null }, 200),
  )
  .openapi(
    createRoute({
      ...auth,
      method: "get",
      path: "/api/templates/{id}",
      summary: "One template, with its files' content",
      request: { params: IdParam },
      responses: { 200: jsonContent(TemplateSchema, "The template"), ...problems(400, 401, 404) },
    }),
    async (c) => c.json(await getTemplate(c.var.deps, c.req.valid("param").id), 200),
  )
  .openapi(
    createRoute({
      ...adminOnly,
      method: "post",
      path: "/api/templates",
      summary: "Add a template (admins): a Compose project's files, default env and commands",
      request: { body: jsonBody(TemplateInputSchema) },
      responses: { 201: jsonContent(TemplateSchema, "Created"), ...problems(400, 401, 403, 409, 413) },
    }),
    async (c) => c.json(await createTemplate(c.var.deps, actorOf(c), c.req.valid("json")), 201),
  )
  .openapi(
    createRoute({
      ...adminOnly,
      method: "delete",
      path: "/api/templates/{id}",
      summary: "Delete a template (admins; built-ins cannot be); apps made from it are unaffected",
      request: { params: IdParam },
      responses: {
        200: jsonContent(z.object({ success: z.literal(true) }), "Deleted"),
        ...problems(400, 401, 403, 404, 409),
      },
    }),
    async (c) => {
      await deleteTemplate(c.var.deps, actorOf(c), c.req.valid("param").id);
      return c.json({ success: true as const }, 200);
    },
  );
