import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { recordAudit } from "../audit/service.ts";
import type { Config } from "../config.ts";
import { HoistError } from "../errors.ts";
import type { Deps } from "../ports.ts";
import { cond, type Key } from "../store/store.ts";
import type { User } from "../users/entity.ts";
import { authKeys } from "./entity.ts";
import type { Caller, Session } from "./service.ts";

/**
 * The state of a browser sign-in flow (GitHub OAuth, OpenID Connect): a
 * single-use table item with a TTL, holding the PKCE verifier, and bound to
 * the browser that started it. A random nonce goes to that browser only (the
 * `hoist_oauth` cookie, path-scoped to the provider's callback) and its
 * SHA-256 to the state item. Without it, an authorize URL started by someone
 * else (a link flow on an attacker's account, or a login CSRF) would complete
 * in a victim's browser that already authorised the app at the provider.
 */
const STATE_TTL_SECONDS = 600;
/** The cookie holding the browser nonce of the flow in progress (path-scoped to the callback). */
export const OAUTH_COOKIE = "hoist_oauth";
export const OAUTH_COOKIE_MAX_AGE = STATE_TTL_SECONDS;

/** Who issued the flow; an item without `provider` is GitHub's (as stored before OpenID Connect came). */
export type OAuthProvider = "github" | "oidc";
export type OAuthFlow = { mode: "login" } | { mode: "link"; userId: string };
export type OAuthOutcome = { mode: "login"; session: Session; created: boolean } | { mode: "link"; user: User };

export type OAuthStateItem = Key & {
  entity: "oauth-state";
  provider?: "oidc";
  codeVerifier: string;
  /** The exact redirect_uri sent to the authorize page; the code exchange must repeat it. */
  redirectUri: string;
  mode: "login" | "link";
  /** The signed-in user who started linking (mode "link"). */
  userId?: string;
  /** OpenID Connect: the `nonce` sent with the authorization request, which the ID token must carry back. */
  nonce?: string;
  /**
   * SHA-256 (base64url) of the nonce sent to the starting browser in the `hoist_oauth` cookie: one nonce
   * per state. The nonce itself is never stored. A second flow in the same browser overwrites the cookie,
   * which only invalidates the first flow (it then fails with a mismatch; the user starts again).
   */
  browserNonceSha256: string;
  createdAt: number;
  expiresAt: number;
};

/** Where the provider sends the browser back: the public URL if configured, else the origin the request came to. */
export function oauthCallbackUrl(config: Config, requestOrigin: string, provider: OAuthProvider): string {
  return `${(config.publicUrl ?? requestOrigin).replace(/\/+$/, "")}/api/auth/${provider}/callback`;
}

export const s256 = (value: string) => createHash("sha256").update(value).digest("base64url");
const random = () => randomBytes(32).toString("base64url");
const invalidState = () => new HoistError(400, "invalid_oauth_state", "Invalid or expired OAuth state");
const otherBrowser = () =>
  new HoistError(400, "oauth_browser_mismatch", "This sign-in was started in another browser; start again");

/** Whether the cookie's nonce hashes to the one stored with the state, compared in constant time. */
function sameBrowser(nonce: string | undefined, storedSha256: string | undefined): boolean {
  if (!nonce || !storedSha256) return false;
  const expected = Buffer.from(storedSha256, "base64url");
  const actual = createHash("sha256").update(nonce).digest();
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/**
 * Stores a fresh state (10 minutes, single use) with a new PKCE verifier and the hash of a new browser
 * nonce (and, for OpenID Connect, a new ID token nonce); the caller sets `browserNonce` as the cookie.
 */
export async function putOAuthState(
  deps: Pick<Deps, "store">,
  provider: OAuthProvider,
  flow: OAuthFlow,
  redirectUri: string,
  now = Date.now(),
): Promise<{ state: string; codeVerifier: string; nonce?: string; browserNonce: string }> {
  const state = random();
  const codeVerifier = random();
  const browserNonce = random();
  const nonce = provider === "oidc" ? random() : undefined;
  const item: OAuthStateItem = {
    ...authKeys.oauthState(state),
    entity: "oauth-state",
    ...(provider === "oidc" ? { provider } : {}),
    codeVerifier,
    redirectUri,
    mode: flow.mode,
    ...(flow.mode === "link" ? { userId: flow.userId } : {}),
    ...(nonce ? { nonce } : {}),
    browserNonceSha256: s256(browserNonce),
    createdAt: now,
    expiresAt: Math.floor(now / 1000) + STATE_TTL_SECONDS,
  };
  await deps.store.put(item, { condition: cond.notExists() });
  return { state, codeVerifier, ...(nonce ? { nonce } : {}), browserNonce };
}

/**
 * The provider's redirect back. The state is consumed first (delete returns it), so a replayed, forged,
 * expired or other provider's one fails before anything reaches the provider; then the browser must show
 * the flow's nonce (the `hoist_oauth` cookie), so a flow started elsewhere fails too, its state spent.
 */
export async function takeOAuthState(
  deps: Pick<Deps, "store">,
  provider: OAuthProvider,
  input: { state: string; browserNonce?: string },
  caller: Caller,
  now = Date.now(),
): Promise<OAuthStateItem> {
  const flow = await deps.store.delete<OAuthStateItem>(authKeys.oauthState(input.state));
  if (flow?.entity !== "oauth-state" || flow.expiresAt <= Math.floor(now / 1000)) throw invalidState();
  if ((flow.provider ?? "github") !== provider) throw invalidState();
  if (!sameBrowser(input.browserNonce, flow.browserNonceSha256)) {
    await recordAudit(deps, {
      userId: flow.userId ?? null,
      action: "auth.oauth_state_mismatch",
      resourceType: "user",
      resourceId: flow.userId ?? null,
      details: { method: provider, mode: flow.mode, cookie: input.browserNonce ? "different" : "missing" },
      ipAddress: caller.ip,
    });
    throw otherBrowser();
  }
  return flow;
}
