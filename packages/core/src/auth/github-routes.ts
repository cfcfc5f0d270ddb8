import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "../http/env.ts";
import { clientIp } from "../http/middleware/client-ip.ts";
import { bearer, jsonContent, noAuth, problems } from "../http/openapi.ts";
import { validationHook } from "../http/problem.ts";
import { completeGitHubAuth, type GitHubFlow, startGitHubAuth, unlinkGitHub } from "./github.ts";
import { requireUser } from "./middleware.ts";
import {
  bindFlowToBrowser,
  callbackAnswer,
  callbackQueryFields,
  clearFlowCookie,
  flowCookie,
  redirect,
  requestOrigin,
  OAuthSession as Session,
  UserOnly,
} from "./oauth-http.ts";

const CallbackQuery = z
  .object(callbackQueryFields)
  .refine((q) => q.code !== undefined || q.error !== undefined, { message: "Required", path: ["code"] });

const loginRoute = createRoute({
  method: "get",
  path: "/api/auth/github/login",
  tags: ["auth"],
  security: noAuth,
  summary: "Start signing in or up with GitHub (redirects to GitHub; state + PKCE)",
  responses: { 302: redirect("To GitHub's authorize page"), ...problems(429, 503) },
});

/** Starts a flow and binds it to this browser. A second flow here overwrites the cookie: the first one then fails. */
async function startFlow(c: Context<AppEnv>, flow: GitHubFlow): Promise<string> {
  const { authorizeUrl, browserNonce } = await startGitHubAuth(c.var.deps, flow, requestOrigin(c));
  bindFlowToBrowser(c, "github", browserNonce);
  return authorizeUrl;
}

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
  middleware: [clearFlowCookie("github")] as const,
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

export const githubAuthRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(loginRoute, async (c) => c.redirect(await startFlow(c, { mode: "login" }), 302))
  .openapi(linkRoute, async (c) => {
    return c.json({ authorizeUrl: await startFlow(c, { mode: "link", userId: c.var.user.id }) }, 200);
  })
  .openapi(callbackRoute, async (c) => {
    const input = { ...c.req.valid("query"), browserNonce: flowCookie(c) };
    const outcome = await completeGitHubAuth(c.var.deps, input, { ip: clientIp(c) });
    return callbackAnswer(c, "github", outcome);
  })
  .openapi(unlinkRoute, async (c) =>
    c.json({ user: await unlinkGitHub(c.var.deps, c.var.user, { ip: clientIp(c) }) }, 200),
  );
