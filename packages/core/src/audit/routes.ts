import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { requireUser } from "../auth/middleware.ts";
import { effectiveRole } from "../auth/scopes.ts";
import type { AppEnv } from "../http/env.ts";
import { bearer, jsonContent, PageQuery, pageOf, problems } from "../http/openapi.ts";
import { validationHook } from "../http/problem.ts";
import { listAudit } from "./service.ts";

const AuditLogSchema = z
  .object({
    id: z.string(),
    userId: z.string().nullable(),
    action: z.string(),
    resourceType: z.string(),
    resourceId: z.string().nullable(),
    details: z.record(z.string(), z.unknown()),
    ipAddress: z.string().nullable(),
    createdAt: z.number().int(),
  })
  .openapi("AuditLog");

const name = z.string().min(1).max(100);
const list = createRoute({
  method: "get",
  path: "/api/audit-logs",
  tags: ["audit"],
  summary: "Audit entries, newest first (members: their own; admins: everyone's)",
  security: bearer,
  middleware: [requireUser] as const,
  request: {
    query: PageQuery.extend({
      resourceType: name.optional(),
      resourceId: name.optional(),
      action: name.optional(),
      userId: name.optional(),
    }),
  },
  responses: { 200: jsonContent(pageOf(AuditLogSchema), "A page of entries"), ...problems(400, 401) },
});

export const auditRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook }).openapi(list, async (c) => {
  const q = c.req.valid("query");
  const viewer = { id: c.var.user.id, role: effectiveRole(c) };
  return c.json(await listAudit(c.var.deps, { ...q, viewer }), 200);
});
