import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "../http/env.ts";
import { clientIp } from "../http/middleware/client-ip.ts";
import { bearer, jsonContent, noAuth, problems } from "../http/openapi.ts";
import { validationHook } from "../http/problem.ts";
import { requireUser } from "./middleware.ts";
import {
  bindFlowToBrowser,
  callbackAnswer,
  callbackQueryFields,
  clearFlowCookie,
  flowCookie,
  OAuthSession,
  redirect,
  requestOrigin,
  UserOnly,
} from "./oauth-http.ts";
import type { OAuthFlow } from "./oauth-state.ts";
import { completeOidcAuth, startOidcAuth, unlinkOidc } from "./oidc-accounts.ts";

/** The OpenID Connect twin of github-routes.ts: the same flow, cookie and answers, for HOIST_OIDC_ISSUER. */

const extra = z.string().max(1000).optional();
const CallbackQuery = z
  .object({
    ...callbackQueryFields,
    /** RFC 9207: the issuer of the response, checked against the configured one. */
    iss: z.string().max(2000).optional(),
    // Sent by some providers (Google: scope, authuser, prompt, hd; Keycloak: session_state); not used.
    scope: extra,
    authuser: extra,
    prompt: extra,
    hd: extra,
    session_state: extra,
  })
  .refine((q) => q.code !== undefined || q.error !== undefined, { message: "Required", path: ["code"] });

const loginRoute = createRoute({
  method: "get",
  path: "/api/auth/oidc/login",
  tags: ["auth"],
  security: noAuth,
  summary: "Start signing in or up with the OpenID Connect provider (redirects to it; state, nonce + PKCE)",
  responses: { 302: redirect("To the provider's authorize page"), ...problems(429, 502, 503) },
});

const callbackRoute = createRoute({
  method: "get",
  path: "/api/auth/oidc/callback",
  tags: ["auth"],
  security: noAuth,
  summary: "The OpenID Connect provider's redirect back: signs in, creates the account, or links it",
  description:
    "Verifies the ID token (signature against the provider's JWKS, issuer, audience, expiry, nonce). " +
    "JSON when the request accepts application/json or no HOIST_FRONTEND_URL is set; otherwise a redirect to " +
    "the front end with `#token=…&refreshToken=…&expiresIn=…` (sign-in) or `#linked=oidc` (linking). " +
    "Needs the `hoist_oauth` cookie set when the flow started: a flow finished in another browser is a 400.",
  middleware: [clearFlowCookie("oidc")] as const,
  request: { query: CallbackQuery },
  responses: {
    200: jsonContent(z.union([OAuthSession, UserOnly]), "Signed in (or linked: `{user}` only)"),
    302: redirect("To the front end, tokens in the fragment"),
    ...problems(400, 401, 403, 409, 429, 502, 503),
  },
});

const linkRoute = createRoute({
  method: "post",
  path: "/api/auth/oidc/link",
  tags: ["auth"],
  summary: "Start linking an OpenID Connect identity to the signed-in user",
  security: bearer,
  middleware: [requireUser] as const,
  responses: {
    200: jsonContent(z.object({ authorizeUrl: z.string() }), "Send the browser here"),
    ...problems(401, 429, 502, 503),
  },
});

const unlinkRoute = createRoute({
  method: "delete",
  path: "/api/auth/oidc/link",
  tags: ["auth"],
  summary: "Unlink the OpenID Connect identity (refused when the account would have no way to sign in)",
  security: bearer,
  middleware: [requireUser] as const,
  responses: { 200: jsonContent(UserOnly, "Unlinked"), ...problems(401, 409, 429) },
});

/** Starts a flow and binds it to this browser. A second flow here overwrites the cookie: the first one then fails. */
async function startFlow(c: Context<AppEnv>, flow: OAuthFlow): Promise<string> {
  const { authorizeUrl, browserNonce } = await startOidcAuth(c.var.deps, flow, requestOrigin(c));
  bindFlowToBrowser(c, "oidc", browserNonce);
  return authorizeUrl;
}

export const oidcAuthRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(loginRoute, async (c) => c.redirect(await startFlow(c, { mode: "login" }), 302))
  .openapi(linkRoute, async (c) => {
    return c.json({ authorizeUrl: await startFlow(c, { mode: "link", userId: c.var.user.id }) }, 200);
  })
  .openapi(callbackRoute, async (c) => {
    const input = { ...c.req.valid("query"), browserNonce: flowCookie(c) };
    const outcome = await completeOidcAuth(c.var.deps, input, { ip: clientIp(c) });
    return callbackAnswer(c, "oidc", outcome);
  })
  .openapi(unlinkRoute, async (c) =>
    c.json({ user: await unlinkOidc(c.var.deps, c.var.user, { ip: clientIp(c) }) }, 200),
  );
