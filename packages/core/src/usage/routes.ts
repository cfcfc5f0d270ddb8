import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { requireRole, requireUser } from "../auth/middleware.ts";
import { effectiveRole } from "../auth/scopes.ts";
import { ForbiddenError } from "../errors.ts";
import type { AppEnv } from "../http/env.ts";
import { bearer, jsonContent, PageQuery, pageOf, problems } from "../http/openapi.ts";
import { validationHook } from "../http/problem.ts";
import { LIMITS, PRICED } from "../plans/plans.ts";
import { clock } from "./running.ts";
import { getUsage, listUsage, monthOf, statementCsv, usageStatement } from "./service.ts";

const Month = z
  .string()
  .regex(/^\d{4}-(0[1-9]|1[0-2])$/, "YYYY-MM")
  .optional()
  .openapi({ description: "YYYY-MM (UTC); default: this month" });
const UserId = z.string().min(1).max(64).optional().openapi({ description: "Admins: another user's" });

const Counters = {
  userId: z.string(),
  month: z.string(),
  requests: z.number().int(),
  deployments: z.number().int(),
  deploySeconds: z.number().int(),
  appRunningMinutes: z.number().int().openapi({ description: "Booked minutes of running apps" }),
};
const UsageSchema = z
  .object({
    ...Counters,
    liveAppMinutes: z
      .number()
      .int()
      .openapi({ description: "Minutes of apps running now, not yet booked (a started minute counts as one)" }),
    plan: z.string(),
    limits: z
      .object(Object.fromEntries(LIMITS.map((l) => [l, z.number().int().optional()])))
      .openapi({ description: "The plan's limits; a missing one is unlimited" }),
  })
  .openapi("Usage");
const StatementSchema = z
  .object({
    month: z.string(),
    plan: z.string(),
    lines: z.array(
      z.object({
        item: z.enum(PRICED),
        quantity: z.number().int(),
        unitCents: z.number(),
        amountCents: z.number().int(),
      }),
    ),
    totalCents: z.number().int(),
  })
  .openapi("UsageStatement");

const auth = { security: bearer, middleware: [requireUser], tags: ["usage"] };

/** Whose use: your own; an admin may name anyone. */
function subject(c: Context<AppEnv>, userId: string | undefined): string {
  if (!userId || userId === c.var.user.id) return c.var.user.id;
  if (effectiveRole(c) !== "admin") throw new ForbiddenError("Only admins may read another user's usage");
  return userId;
}

const monthOr = (c: Context<AppEnv>, month: string | undefined) => month ?? monthOf(clock(c.var.deps));

export const usageRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      ...auth,
      method: "get",
      path: "/api/usage",
      summary: "Metered use in a month, against your plan (admins: `userId` for anyone's)",
      request: { query: z.object({ month: Month, userId: UserId }) },
      responses: { 200: jsonContent(UsageSchema, "Usage"), ...problems(400, 401, 403) },
    }),
    async (c) => {
      const q = c.req.valid("query");
      return c.json(await getUsage(c.var.deps, subject(c, q.userId), monthOr(c, q.month)), 200);
    },
  )
  .openapi(
    createRoute({
      ...auth,
      middleware: [requireUser, requireRole("admin")] as const,
      method: "get",
      path: "/api/usage/users",
      summary: "Every user's metered use in a month (admins), by user id",
      request: { query: PageQuery.extend({ month: Month }) },
      responses: { 200: jsonContent(pageOf(z.object(Counters)), "A page of users' usage"), ...problems(400, 401, 403) },
    }),
    async (c) => {
      const q = c.req.valid("query");
      return c.json(await listUsage(c.var.deps, monthOr(c, q.month), q.limit, q.cursor), 200);
    },
  )
  .openapi(
    createRoute({
      ...auth,
      method: "get",
      path: "/api/usage/statement",
      summary: "A month's statement: booked counters × your plan's prices, in cents (`Accept: text/csv` for CSV)",
      request: { query: z.object({ month: Month, userId: UserId }) },
      responses: {
        200: {
          description: "The statement",
          content: {
            "application/json": { schema: StatementSchema },
            "text/csv": { schema: z.string().openapi({ description: "item,quantity,unitCents,amountCents" }) },
          },
        },
        ...problems(400, 401, 403),
      },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const statement = await usageStatement(c.var.deps, subject(c, q.userId), monthOr(c, q.month));
      if (/\btext\/csv\b/i.test(c.req.header("accept") ?? "")) {
        return c.body(statementCsv(statement), 200, {
          "Content-Type": "text/csv; charset=utf-8",
          "Content-Disposition": `attachment; filename="hoist-${statement.month}.csv"`,
        });
      }
      return c.json(statement, 200);
    },
  );
