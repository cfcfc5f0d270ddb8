import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import type { AppEnv } from "../http/env.ts";
import { clientIp } from "../http/middleware/client-ip.ts";
import { bearer, jsonContent, noAuth, problems } from "../http/openapi.ts";
import { validationHook } from "../http/problem.ts";
import { UserSchema } from "../users/schemas.ts";
import {
  completeGitHubAuth,
  type GitHubFlow,
  type GitHubOutcome,
  OAUTH_COOKIE,
  OAUTH_COOKIE_MAX_AGE,
  oauthCookieScope,
  startGitHubAuth,
  unlinkGitHub,
} from "./github.ts";
import { requireUser } from "./middleware.ts";

const UserOnly = z.object({ user: UserSchema });
const Session = z.object({
  user: UserSchema,
  token: z.string(),
  refreshToken: z.string(),
  expiresIn: z.number().int(),
});
const redirect = (description: string) => ({
  description,
  headers: z.object({ Location: z.string().openapi({ description: "Where the browser goes next" }) }),
});

const CallbackQuery = z
  .object({
    code: z.string().min(1).max(256).optional(),
    state: z
      .string()
      .min(1)
      .max(128)
      .regex(/^[A-Za-z0-9_-]+$/, "base64url"),
    error: z
      .string()
      .max(64)
      .regex(/^[a-z0-9_]+$/, "an OAuth error code")
      .optional(),
    error_description: z.string().max(1000).optional(),
    error_uri: z.string().max(1000).optional(),
  })
  .refine((q) => q.code !== undefined || q.error !== undefined, { message: "Required", path: ["code"] });

const loginRoute = createRoute({
  method: "get",
  path: "/api/auth/github/login",
  tags: ["auth"],
  security: noAuth,
  summary: "Start signing in or up with GitHub (redirects to GitHub; state + PKCE)",
  responses: { 302: redirect("To GitHub's authorize page"), ...problems(429, 503) },
});

const origin = (c: Context) => new URL(c.req.url).origin;

/** Sets (or, with max-age 0, clears) the cookie binding the flow to this browser; sent back only to the callback. */
function setFlowCookie(c: Context<AppEnv>, value: string, maxAge: number): void {
  setCookie(c, OAUTH_COOKIE, value, {
    ...oauthCookieScope(c.var.deps.config, origin(c)),
    httpOnly: true,
    // Lax: still sent on GitHub's top-level GET redirect back to the callback.
    sameSite: "Lax",
    maxAge,
  });
}

/** Starts a flow and binds it to this browser. A second flow here overwrites the cookie: the first one then fails. */
async function startFlow(c: Context<AppEnv>, flow: GitHubFlow): Promise<string> {
  const { authorizeUrl, browserNonce } = await startGitHubAuth(c.var.deps, flow, origin(c));
  setFlowCookie(c, browserNonce, OAUTH_COOKIE_MAX_AGE);
  return authorizeUrl;
}

/** Every callback answer (success, problem, even a malformed query) clears the flow cookie: it is single use. */
const clearFlowCookie: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next();
  setFlowCookie(c, "", 0);
};

const callbackRoute = createRoute({
  method: "get",
  path: "/api/auth/github/callback",
  tags: ["auth"],
  security: noAuth,
  summary: "GitHub's redirect back: signs in, creates the account, or links it",
  description:
    "JSON when the request accepts application/json or no HOIST_FRONTEND_URL is set; otherwise a redirect to " +
    "the front end with `#token=…&refreshToken=…&expiresIn=…` (sign-in) or `#linked=github` (linking). " +
    "Needs the `hoist_oauth` cookie set when the flow started: a flow finished in another browser is a 400.",
  middleware: [clearFlowCookie] as const,
  request: { query: CallbackQuery },
  responses: {
    200: jsonContent(z.union([Session, UserOnly]), "Signed in (or linked: `{user}` only)"),
    302: redirect("To the front end, tokens in the fragment"),
    ...problems(400, 403, 409, 429, 502, 503),
  },
});

const linkRoute = createRoute({
  method: "post",
  path: "/api/auth/github/link",
  tags: ["auth"],
  summary: "Start linking a GitHub account to the signed-in user",
  security: bearer,
  middleware: [requireUser] as const,
  responses: {
    200: jsonContent(z.object({ authorizeUrl: z.string() }), "Send the browser here"),
    ...problems(401, 429, 503),
  },
});

const unlinkRoute = createRoute({
  method: "delete",
  path: "/api/auth/github/link",
  tags: ["auth"],
  summary: "Unlink GitHub (refused for accounts without a password)",
  security: bearer,
  middleware: [requireUser] as const,
  responses: { 200: jsonContent(UserOnly, "Unlinked"), ...problems(401, 409, 429) },
});

/** The front end's URL with the outcome in the fragment, which browsers never send to servers. */
function frontendRedirect(frontendUrl: string, outcome: GitHubOutcome): string {
  const target = new URL(frontendUrl);
  const fragment =
    outcome.mode === "link"
      ? new URLSearchParams({ linked: "github" })
      : new URLSearchParams({
          token: outcome.session.token,
          refreshToken: outcome.session.refreshToken,
          expiresIn: String(outcome.session.expiresIn),
        });
  target.hash = fragment.toString();
  return target.toString();
}

export const githubAuthRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(loginRoute, async (c) => c.redirect(await startFlow(c, { mode: "login" }), 302))
  .openapi(linkRoute, async (c) => {
    return c.json({ authorizeUrl: await startFlow(c, { mode: "link", userId: c.var.user.id }) }, 200);
  })
  .openapi(callbackRoute, async (c) => {
    const input = { ...c.req.valid("query"), browserNonce: getCookie(c, OAUTH_COOKIE) };
    const outcome = await completeGitHubAuth(c.var.deps, input, { ip: clientIp(c) });
    c.header("Cache-Control", "no-store");
    const frontendUrl = c.var.deps.config.frontendUrl;
    if (!frontendUrl || (c.req.header("accept") ?? "").includes("application/json")) {
      return c.json(outcome.mode === "link" ? { user: outcome.user } : outcome.session, 200);
    }
    return c.redirect(frontendRedirect(frontendUrl, outcome), 302);
  })
  .openapi(unlinkRoute, async (c) =>
    c.json({ user: await unlinkGitHub(c.var.deps, c.var.user, { ip: clientIp(c) }) }, 200),
  );
