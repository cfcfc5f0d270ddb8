import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { actorOf } from "../actor.ts";
import type { AppEnv } from "../http/env.ts";
import { idParam } from "../http/ids.ts";
import { bearer, jsonBody, jsonContent, PageQuery, pageOf, problems } from "../http/openapi.ts";
import { validationHook } from "../http/problem.ts";
import { SCOPES } from "./api-token-entity.ts";
import { createApiToken, listApiTokens, revokeApiToken } from "./api-tokens.ts";
import { requireUser } from "./middleware.ts";

const Scope = z.enum(SCOPES).openapi({
  description:
    "`read`: every GET. `deploy`: also deploy, cancel, redeploy, start, stop and extend apps. " +
    "`write`: everything the owner may do. `admin`: also the admin routes (admins only).",
});
const ApiTokenSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    scopes: z.array(Scope),
    createdAt: z.number().int(),
    lastUsedAt: z.number().int().nullable().openapi({ description: "Updated at most once a minute" }),
    expiresAt: z.number().int().nullable().openapi({ description: "null: never expires" }),
  })
  .openapi("ApiToken");
const NewApiTokenSchema = ApiTokenSchema.omit({ lastUsedAt: true })
  .extend({ token: z.string().openapi({ description: "`hst_…`: shown this once, never again" }) })
  .openapi("NewApiToken");
const auth = { security: bearer, middleware: [requireUser], tags: ["tokens"] };

export const apiTokenRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      ...auth,
      method: "post",
      path: "/api/tokens",
      summary: "Create an API token for the CLI or CI (`Authorization: Bearer hst_…`); its secret is answered once",
      request: {
        body: jsonBody(
          z
            .object({
              name: z.string().trim().min(1).max(100),
              scopes: z.array(Scope).min(1).max(SCOPES.length),
              expiresInDays: z.number().int().min(1).max(3650).optional(),
            })
            .strict(),
        ),
      },
      responses: { 201: jsonContent(NewApiTokenSchema, "Created"), ...problems(400, 401, 403, 415, 429) },
    }),
    async (c) =>
      c.json(
        await createApiToken(
          c.var.deps,
          actorOf(c),
          { role: c.var.user.role, apiToken: c.var.apiToken },
          c.req.valid("json"),
        ),
        201,
      ),
  )
  .openapi(
    createRoute({
      ...auth,
      method: "get",
      path: "/api/tokens",
      summary: "Your API tokens, oldest first (never their secrets)",
      request: { query: PageQuery },
      responses: { 200: jsonContent(pageOf(ApiTokenSchema), "A page of tokens"), ...problems(400, 401, 403, 429) },
    }),
    async (c) => {
      const { limit, cursor } = c.req.valid("query");
      return c.json(await listApiTokens(c.var.deps, c.var.user.id, limit, cursor), 200);
    },
  )
  .openapi(
    createRoute({
      ...auth,
      method: "delete",
      path: "/api/tokens/{id}",
      summary: "Revoke an API token at once",
      request: { params: idParam("tok") },
      responses: {
        200: jsonContent(z.object({ success: z.literal(true) }), "Revoked"),
        ...problems(401, 403, 404, 429),
      },
    }),
    async (c) => {
      await revokeApiToken(c.var.deps, actorOf(c), c.req.valid("param").id);
      return c.json({ success: true as const }, 200);
    },
  );
