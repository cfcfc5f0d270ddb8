import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { ValidationError } from "../errors.ts";
import type { AppEnv } from "../http/env.ts";
import { clientIp } from "../http/middleware/client-ip.ts";
import { bearer, jsonBody, jsonContent, noAuth, problems } from "../http/openapi.ts";
import { validationHook } from "../http/problem.ts";
import { toUser } from "../users/entity.ts";
import { Email, Password, Username, UserSchema } from "../users/schemas.ts";
import { requireUser } from "./middleware.ts";
import { login, logout, refresh, register } from "./service.ts";

const Session = z
  .object({ user: UserSchema, token: z.string(), refreshToken: z.string(), expiresIn: z.number().int() })
  .openapi("Session");
const RefreshToken = z.string().min(20).max(200);

const registerRoute = createRoute({
  method: "post",
  path: "/api/auth/register",
  tags: ["auth"],
  security: noAuth,
  summary: "Create an account (the first one becomes admin)",
  request: { body: jsonBody(z.object({ username: Username, email: Email, password: Password })) },
  responses: { 201: jsonContent(Session, "Registered and signed in"), ...problems(400, 409, 415, 429) },
});

const loginRoute = createRoute({
  method: "post",
  path: "/api/auth/login",
  tags: ["auth"],
  security: noAuth,
  summary: "Sign in with username or email and password",
  request: {
    body: jsonBody(
      z
        .object({
          username: z.string().min(1).max(254).optional(),
          email: z.string().min(1).max(254).optional(),
          password: Password,
        })
        .refine((b) => (b.username === undefined) !== (b.email === undefined), {
          message: "Give either username or email",
          path: ["username"],
        }),
    ),
  },
  responses: { 200: jsonContent(Session, "Signed in"), ...problems(400, 401, 403, 423, 429) },
});

const refreshRoute = createRoute({
  method: "post",
  path: "/api/auth/refresh",
  tags: ["auth"],
  security: noAuth,
  summary: "Trade a refresh token for a new pair (the old one is spent)",
  request: { body: jsonBody(z.object({ refreshToken: RefreshToken })) },
  responses: { 200: jsonContent(Session, "New tokens"), ...problems(400, 401, 429) },
});

const logoutRoute = createRoute({
  method: "post",
  path: "/api/auth/logout",
  tags: ["auth"],
  summary: "Revoke the refresh token's family and block this access token",
  security: bearer,
  middleware: [requireUser] as const,
  request: {
    body: {
      required: false,
      content: { "application/json": { schema: z.object({ refreshToken: RefreshToken.optional() }) } },
    },
  },
  responses: { 200: jsonContent(z.object({ success: z.literal(true) }), "Signed out"), ...problems(400, 401) },
});

const whoAmI = (path: string) =>
  createRoute({
    method: "get",
    path,
    tags: ["auth"],
    summary: "The signed-in user",
    security: bearer,
    middleware: [requireUser] as const,
    responses: { 200: jsonContent(z.object({ user: UserSchema }), "The user"), ...problems(401) },
  });

export const authRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(registerRoute, async (c) =>
    c.json(await register(c.var.deps, c.req.valid("json"), { ip: clientIp(c) }), 201),
  )
  .openapi(loginRoute, async (c) => c.json(await login(c.var.deps, c.req.valid("json"), { ip: clientIp(c) }), 200))
  .openapi(refreshRoute, async (c) =>
    c.json(await refresh(c.var.deps, c.req.valid("json").refreshToken, { ip: clientIp(c) }), 200),
  )
  .openapi(logoutRoute, async (c) => {
    const body = c.req.header("content-type") ? c.req.valid("json") : {};
    const claims = c.var.claims;
    if (!claims) throw new ValidationError("An API token does not sign out: revoke it with DELETE /api/tokens/{id}");
    await logout(c.var.deps, c.var.user, claims, body.refreshToken, { ip: clientIp(c) });
    return c.json({ success: true as const }, 200);
  })
  .openapi(whoAmI("/api/auth/verify"), (c) => c.json({ user: toUser(c.var.user) }, 200))
  .openapi(whoAmI("/api/auth/me"), (c) => c.json({ user: toUser(c.var.user) }, 200));
