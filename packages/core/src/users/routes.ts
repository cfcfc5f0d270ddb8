import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { requireRole, requireUser } from "../auth/middleware.ts";
import type { AppEnv } from "../http/env.ts";
import { idParam } from "../http/ids.ts";
import { clientIp } from "../http/middleware/client-ip.ts";
import { bearer, jsonBody, jsonContent, PageQuery, pageOf, problems } from "../http/openapi.ts";
import { validationHook } from "../http/problem.ts";
import { UserSchema } from "./schemas.ts";
import { getUser, listUsers, updateUser } from "./service.ts";

const adminOnly = [requireUser, requireRole("admin")];
const IdParam = idParam("usr");

const list = createRoute({
  method: "get",
  path: "/api/users",
  tags: ["users"],
  summary: "All users (admins)",
  security: bearer,
  middleware: adminOnly,
  request: { query: PageQuery },
  responses: { 200: jsonContent(pageOf(UserSchema), "A page of users"), ...problems(400, 401, 403) },
});

const get = createRoute({
  method: "get",
  path: "/api/users/{id}",
  tags: ["users"],
  summary: "One user (admins)",
  security: bearer,
  middleware: adminOnly,
  request: { params: IdParam },
  responses: { 200: jsonContent(UserSchema, "The user"), ...problems(401, 403, 404) },
});

const patch = createRoute({
  method: "patch",
  path: "/api/users/{id}",
  tags: ["users"],
  summary: "Change a user's role or plan, or disable them (admins)",
  security: bearer,
  middleware: adminOnly,
  request: {
    params: IdParam,
    body: jsonBody(
      z
        .object({
          role: z.enum(["admin", "member"]).optional(),
          disabled: z.boolean().optional(),
          plan: z.string().min(1).max(32).optional().openapi({ description: "One of the configured plans" }),
        })
        .strict()
        .refine((b) => b.role !== undefined || b.disabled !== undefined || b.plan !== undefined, {
          message: "Give role, disabled or plan",
        }),
    ),
  },
  responses: { 200: jsonContent(UserSchema, "The updated user"), ...problems(400, 401, 403, 404, 409) },
});

export const userRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(list, async (c) => {
    const { limit, cursor } = c.req.valid("query");
    return c.json(await listUsers(c.var.deps, limit, cursor), 200);
  })
  .openapi(get, async (c) => c.json(await getUser(c.var.deps, c.req.valid("param").id), 200))
  .openapi(patch, async (c) =>
    c.json(await updateUser(c.var.deps, c.var.user, c.req.valid("param").id, c.req.valid("json"), clientIp(c)), 200),
  );
