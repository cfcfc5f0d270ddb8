import { z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import type { AppEnv } from "../http/env.ts";
import { UserSchema } from "../users/schemas.ts";
import {
  OAUTH_COOKIE,
  OAUTH_COOKIE_MAX_AGE,
  type OAuthOutcome,
  type OAuthProvider,
  oauthCallbackUrl,
} from "./oauth-state.ts";

/** The HTTP side the browser sign-in flows (GitHub, OpenID Connect) share: the flow cookie, the callback's answer. */

export const UserOnly = z.object({ user: UserSchema });
export const OAuthSession = z.object({
  user: UserSchema,
  token: z.string(),
  refreshToken: z.string(),
  expiresIn: z.number().int(),
});
export const redirect = (description: string) => ({
  description,
  headers: z.object({ Location: z.string().openapi({ description: "Where the browser goes next" }) }),
});

/** The query parameters every OAuth 2.0 authorization response may carry (RFC 6749 § 4.1.2). */
export const callbackQueryFields = {
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
};

export const requestOrigin = (c: Context) => new URL(c.req.url).origin;

/** Sets (or, with max-age 0, clears) the cookie binding the flow to this browser; sent back only to the callback. */
function setFlowCookie(c: Context<AppEnv>, provider: OAuthProvider, value: string, maxAge: number): void {
  const config = c.var.deps.config;
  const origin = requestOrigin(c);
  const https = (url: string | undefined) => url?.startsWith("https:") === true;
  setCookie(c, OAUTH_COOKIE, value, {
    path: new URL(oauthCallbackUrl(config, origin, provider)).pathname,
    secure: https(origin) || https(config.publicUrl),
    httpOnly: true,
    // Lax: still sent on the provider's top-level GET redirect back to the callback.
    sameSite: "Lax",
    maxAge,
  });
}

/** Binds a flow just started to this browser. A second flow here overwrites the cookie: the first one then fails. */
export const bindFlowToBrowser = (c: Context<AppEnv>, provider: OAuthProvider, browserNonce: string) =>
  setFlowCookie(c, provider, browserNonce, OAUTH_COOKIE_MAX_AGE);

/** The browser nonce the callback request carries, if any. */
export const flowCookie = (c: Context) => getCookie(c, OAUTH_COOKIE);

/** Every callback answer (success, problem, even a malformed query) clears the flow cookie: it is single use. */
export const clearFlowCookie =
  (provider: OAuthProvider): MiddlewareHandler<AppEnv> =>
  async (c, next) => {
    await next();
    setFlowCookie(c, provider, "", 0);
  };

/** JSON when asked for (or without a front end); else the front end's URL with the outcome in the fragment. */
export function callbackAnswer(c: Context<AppEnv>, provider: OAuthProvider, outcome: OAuthOutcome) {
  c.header("Cache-Control", "no-store");
  const frontendUrl = c.var.deps.config.frontendUrl;
  if (!frontendUrl || (c.req.header("accept") ?? "").includes("application/json")) {
    return c.json(outcome.mode === "link" ? { user: outcome.user } : outcome.session, 200);
  }
  return c.redirect(frontendRedirect(frontendUrl, provider, outcome), 302);
}

/** The front end's URL with the outcome in the fragment, which browsers never send to servers. */
function frontendRedirect(frontendUrl: string, provider: OAuthProvider, outcome: OAuthOutcome): string {
  const target = new URL(frontendUrl);
  const fragment =
    outcome.mode === "link"
      ? new URLSearchParams({ linked: provider })
      : new URLSearchParams({
          token: outcome.session.token,
          refreshToken: outcome.session.refreshToken,
          expiresIn: String(outcome.session.expiresIn),
        });
  target.hash = fragment.toString();
  return target.toString();
}
