import { generateKeyPair } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TestClient, testClient } from "../testing/http.ts";
import { TestOidcProvider } from "../testing/oidc-provider.ts";
import { type UserItem, userKeys } from "../users/entity.ts";
import { authKeys } from "./entity.ts";
import type { OAuthStateItem } from "./oauth-state.ts";
import { OidcClient, oidcClient } from "./oidc.ts";
import { usernameCandidates } from "./oidc-accounts.ts";

type User = {
  id: string;
  username: string;
  email: string;
  role: string;
  authType: string;
  githubConnected: boolean;
  oidcConnected?: boolean;
};
type Session = { user: User; token: string; refreshToken: string; expiresIn: number };
type Problem = { detail: string; status: number; errors?: unknown[] };
type Audit = { items: { action: string; userId: string | null; details: Record<string, unknown> }[] };

const CALLBACK = "http://localhost/api/auth/oidc/callback";
const ACCEPT_JSON = { accept: "application/json" };
const COOKIE = /^hoist_oauth=([A-Za-z0-9_-]{43});/;

let op: TestOidcProvider;
let t: TestClient;
let first: Session;

/** A Hoist app pointed at the provider, its OIDC client using the provider's (tamperable) fetch. */
async function hoistFor(env: Record<string, string> = {}): Promise<TestClient> {
  const client = await testClient({ ...op.env(), ...env });
  oidcClient(client.deps.config.oidc, () => OidcClient.fromSettings(client.deps.config.oidc, { fetch: op.fetch }));
  return client;
}

beforeAll(async () => {
  op = await TestOidcProvider.start({ redirectUri: CALLBACK });
  t = await hoistFor();
});
afterAll(() => op.stop());

/** Each flow's browser: the `hoist_oauth` cookie its start response set, by the flow's state. */
const jar = new Map<string, string>();
const stateOf = (url: string) => new URL(url, "http://localhost").searchParams.get("state") ?? "";
function keepCookie(res: Response, authorizeUrl: string): string {
  const cookie = COOKIE.exec(res.headers.get("set-cookie") ?? "")?.[1];
  expect(cookie).toBeDefined();
  jar.set(stateOf(authorizeUrl), `hoist_oauth=${cookie}`);
  return authorizeUrl;
}
const inBrowser = (callback: string, headers: Record<string, string> = ACCEPT_JSON) => {
  const cookie = jar.get(stateOf(callback));
  return { headers: { ...headers, ...(cookie ? { cookie } : {}) } };
};

async function startLogin(client = t): Promise<string> {
  const res = await client.call("GET", "/api/auth/oidc/login");
  expect(res.status).toBe(302);
  return keepCookie(res, res.headers.get("location") ?? "");
}

async function startLink(token: string, client = t): Promise<string> {
  const res = await client.json<{ authorizeUrl: string }>("POST", "/api/auth/oidc/link", { token });
  expect(res.status).toBe(200);
  return keepCookie(res.res, res.body.authorizeUrl);
}

/** Through the provider and back: the callback's path and query. */
async function viaProvider(authorizeUrl: string): Promise<string> {
  const back = new URL(await op.browse(authorizeUrl, CALLBACK));
  return `${back.pathname}${back.search}`;
}

async function signInWith<T = Session>(account: { sub: string } | null, authorizeUrl: string, client = t) {
  op.signInAs(account);
  const callback = await viaProvider(authorizeUrl);
  return client.json<T & Problem>("GET", callback, inBrowser(callback));
}

const storedUser = async (id: string) => (await t.deps.store.get<UserItem>(userKeys.user(id))) as UserItem;
const audit = async (action: string) =>
  (await t.json<Audit>("GET", `/api/audit-logs?action=${action}&limit=100`, { token: first.token })).body.items;

describe("signing up and in with the OpenID provider", () => {
  const alice = { sub: "alice-0001", email: "alice@idp.example", email_verified: true, preferred_username: "alice" };

  it("redirects to the provider's authorize endpoint with state, nonce and PKCE S256", async () => {
    const location = new URL(await startLogin());
    expect(`${location.origin}${location.pathname}`).toBe(`${op.issuer}/auth`);
    expect(Object.fromEntries(location.searchParams)).toEqual({
      response_type: "code",
      client_id: op.clientId,
      redirect_uri: CALLBACK,
      scope: "openid email profile",
      state: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      nonce: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      code_challenge: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      code_challenge_method: "S256",
    });
    const item = await t.deps.store.get<OAuthStateItem>(authKeys.oauthState(location.searchParams.get("state") ?? ""));
    expect(item).toMatchObject({ provider: "oidc", mode: "login", nonce: location.searchParams.get("nonce") });
  });

  it("signs up a new account from the identity, then signs the same identity in again", async () => {
    op.addAccount(alice);
    const res = await signInWith(alice, await startLogin());
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    first = res.body;
    expect(first.user).toMatchObject({
      username: "alice",
      email: "alice@idp.example",
      role: "admin",
      authType: "oidc",
      githubConnected: false,
      oidcConnected: true,
    });
    expect(res.res.headers.get("cache-control")).toBe("no-store");
    expect(await storedUser(first.user.id)).toMatchObject({ oidcIssuer: op.issuer, oidcSubject: alice.sub });
    expect((await t.call("GET", "/api/auth/me", { token: first.token })).status).toBe(200);

    const again = await signInWith(alice, await startLogin());
    expect(again.status).toBe(200);
    expect(again.body.user.id).toBe(first.user.id);
    expect(again.body.token).not.toBe(first.token);
  });

  it("authenticated at the token endpoint with client_secret_basic and discovered once", () => {
    const token = op.requests.filter((r) => r.path === "/token");
    expect(token.length).toBeGreaterThanOrEqual(2);
    const basic = Buffer.from(`${op.clientId}:${op.clientSecret}`).toString("base64");
    for (const r of token) expect(r.authorization).toBe(`Basic ${basic}`);
    expect(op.requests.filter((r) => r.path === "/.well-known/openid-configuration")).toHaveLength(1);
    // The provider keeps email out of the ID token of a code flow: the sign-up asked the userinfo endpoint.
    expect(op.requests.some((r) => r.path === "/me")).toBe(true);
  });
});

describe("an ID token that does not verify signs nobody in", () => {
  const mallory = { sub: "mallory-0001", email: "mallory@idp.example", email_verified: true };
  const refused = async (tamper: typeof op.tamperNext, why: RegExp) => {
    op.addAccount(mallory);
    op.tamperNext = tamper;
    const res = await signInWith(mallory, await startLogin());
    op.tamperNext = undefined;
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.res.headers.get("content-type")).toBe("application/problem+json");
    expect(res.body.detail).toMatch(why);
    expect(res.body.detail).toMatch(/^The ID token from TestID was refused: .*; nothing was changed$/);
    expect(await t.deps.store.get(userKeys.oidc(op.issuer, mallory.sub))).toBeUndefined();
    expect(await t.deps.store.get(userKeys.email(mallory.email))).toBeUndefined();
  };

  it("refuses a token signed with another key (a forgery)", async () => {
    const { privateKey } = await generateKeyPair("RS256");
    // Even under the provider's key id: the signature does not verify.
    const kid = JSON.parse(Buffer.from((await op.sign({})).split(".")[0] ?? "", "base64url").toString()).kid;
    await refused((claims) => op.sign(claims, { privateKey, kid }), /not signed with a key TestID publishes/);
    await refused((claims) => op.sign(claims, { privateKey, kid: "other-key" }), /not signed with a key/);
  });

  it("refuses a token issued to another client (audience), or with another azp", async () => {
    await refused((claims) => op.sign({ ...claims, aud: "someone-else" }), /another client \(audience\)/);
    await refused((claims) => op.sign({ ...claims, aud: [op.clientId, "someone-else"] }), /another client \(azp\)/);
  });

  it("refuses a token with another nonce, another issuer, or expired", async () => {
    await refused((claims) => op.sign({ ...claims, nonce: "not-the-flows-nonce" }), /nonce is not this sign-in's/);
    await refused((claims) => op.sign({ ...claims, iss: "https://evil.example" }), /issuer is not/);
    const past = Math.floor(Date.now() / 1000) - 3600;
    await refused((claims) => op.sign({ ...claims, iat: past - 600, exp: past }), /has expired/);
  });

  it("refuses a nonce swapped in the authorize URL: the provider echoes it, Hoist does not accept it", async () => {
    op.addAccount(mallory);
    const url = new URL(await startLogin());
    const state = url.searchParams.get("state") ?? "";
    url.searchParams.set("nonce", "attacker-chosen-nonce");
    op.signInAs(mallory);
    const callback = await viaProvider(url.toString());
    const res = await t.json<Problem>("GET", callback, inBrowser(`?state=${state}`));
    expect(res.status).toBe(400);
    expect(res.body.detail).toMatch(/nonce is not this sign-in's/);
    expect(await t.deps.store.get(userKeys.oidc(op.issuer, mallory.sub))).toBeUndefined();
  });

  it("records each refusal in the audit log", async () => {
    const failed = (await audit("auth.login_failed")).filter((i) => i.details.method === "oidc");
    expect(failed.length).toBeGreaterThanOrEqual(8);
    expect(failed[0]?.details).toMatchObject({ mode: "login", reason: expect.stringMatching(/^The ID token/) });
  });
});

describe("the flow is bound to this browser and this provider", () => {
  const OTHER_BROWSER = "This sign-in was started in another browser; start again";
  const bob = { sub: "bob-0001", email: "bob@idp.example", preferred_username: "bob" };

  it("sets the flow cookie on the OIDC callback's path and clears it on every answer", async () => {
    const res = await t.call("GET", "/api/auth/oidc/login");
    expect(res.headers.get("set-cookie")).toMatch(
      /^hoist_oauth=[A-Za-z0-9_-]{43}; Max-Age=600; Path=\/api\/auth\/oidc\/callback; HttpOnly; SameSite=Lax$/,
    );
    const bad = await t.call("GET", `/api/auth/oidc/callback?code=abc&state=${"A".repeat(43)}`);
    expect(bad.status).toBe(400);
    expect(bad.headers.get("set-cookie")).toMatch(/^hoist_oauth=; Max-Age=0; Path=\/api\/auth\/oidc\/callback;/);
  });

  it("refuses a callback without the cookie or with another flow's; the state is spent", async () => {
    op.addAccount(bob);
    op.signInAs(bob);
    const callback = await viaProvider(await startLogin());
    const tokenCalls = op.requests.filter((r) => r.path === "/token").length;
    const none = await t.json<Problem>("GET", callback, { headers: ACCEPT_JSON });
    expect(none.status).toBe(400);
    expect(none.body.detail).toBe(OTHER_BROWSER);
    expect((await t.json<Problem>("GET", callback, inBrowser(callback))).body.detail).toBe(
      "Invalid or expired OAuth state",
    );
    const other = await startLogin();
    const mine = await viaProvider(await startLogin());
    const crossed = await t.json<Problem>("GET", mine, inBrowser(other));
    expect(crossed.body.detail).toBe(OTHER_BROWSER);
    expect(op.requests.filter((r) => r.path === "/token").length).toBe(tokenCalls);
    expect(await t.deps.store.get(userKeys.oidc(op.issuer, bob.sub))).toBeUndefined();
    const mismatches = await audit("auth.oauth_state_mismatch");
    expect(mismatches.map((i) => i.details.method)).toContain("oidc");
  });

  it("refuses a forged state, and a GitHub flow's state at the OIDC callback", async () => {
    const forged = await t.json<Problem>("GET", `/api/auth/oidc/callback?code=abc&state=${"B".repeat(43)}`);
    expect(forged.status).toBe(400);
    expect(forged.body.detail).toBe("Invalid or expired OAuth state");
    const now = Date.now();
    const githubState: OAuthStateItem = {
      ...authKeys.oauthState("github-flow-state"),
      entity: "oauth-state",
      codeVerifier: "v".repeat(43),
      redirectUri: "http://localhost/api/auth/github/callback",
      mode: "login",
      browserNonceSha256: "n".repeat(43),
      createdAt: now,
      expiresAt: Math.floor(now / 1000) + 600,
    };
    await t.deps.store.put(githubState);
    const res = await t.json<Problem>("GET", "/api/auth/oidc/callback?code=abc&state=github-flow-state");
    expect(res.body.detail).toBe("Invalid or expired OAuth state");
  });

  it("refuses an authorization response naming another issuer (RFC 9207), and a declined sign-in", async () => {
    op.signInAs(bob);
    const back = new URL(await viaProvider(await startLogin()), "http://localhost");
    expect(back.searchParams.get("iss")).toBe(op.issuer);
    back.searchParams.set("iss", "https://evil.example");
    const path = `${back.pathname}${back.search}`;
    const res = await t.json<Problem>("GET", path, inBrowser(path));
    expect(res.status).toBe(400);
    expect(res.body.detail).toBe("The authorization response came from another issuer than TestID");

    const declined = await signInWith(null, await startLogin());
    expect(declined.status).toBe(400);
    expect(declined.body.detail).toBe("The sign-in at TestID was declined; nothing was changed");
  });

  it("answers 400 problems for a malformed callback query, never a 500", async () => {
    for (const path of [
      "/api/auth/oidc/callback",
      `/api/auth/oidc/callback?state=${"A".repeat(43)}`,
      `/api/auth/oidc/callback?code=abc&state=${encodeURIComponent("a b")}`,
      `/api/auth/oidc/callback?code=abc&state=abc&unknown=1`,
    ]) {
      const res = await t.json<Problem>("GET", path);
      expect(res.status, path).toBe(400);
      expect(res.body.errors?.length, path).toBeGreaterThan(0);
    }
  });
});

describe("accounts: never by email; link, sign in, unlink", () => {
  it("refuses sign-up when the email belongs to an account already, and an unverified email", async () => {
    const grace = await t.register("grace");
    const impostor = op.addAccount({ sub: "grace-at-idp", email: "grace@example.com", email_verified: true });
    const res = await signInWith(impostor, await startLogin());
    expect(res.status).toBe(409);
    expect(res.body.detail).toBe("An account with this email exists; sign in to it and link TestID from there");
    expect((await storedUser(grace.user.id)).oidcSubject).toBeUndefined();
    expect(await t.deps.store.get(userKeys.oidc(op.issuer, impostor.sub))).toBeUndefined();

    const unverified = op.addAccount({ sub: "unverified", email: "u@idp.example", email_verified: false });
    const refused = await signInWith(unverified, await startLogin());
    expect(refused.status).toBe(400);
    expect(refused.body.detail).toMatch(/has no verified email address/);
    expect(await t.deps.store.get(userKeys.email("u@idp.example"))).toBeUndefined();
  });

  it("links an identity to a signed-in password account; it then signs into that account", async () => {
    const ada = await t.register("ada");
    const adaAtIdp = op.addAccount({ sub: "ada-at-idp", email: "ada.other@idp.example", email_verified: true });
    const linked = await signInWith<{ user: User }>(adaAtIdp, await startLink(ada.token));
    expect(linked.status, JSON.stringify(linked.body)).toBe(200);
    expect(Object.keys(linked.body)).toEqual(["user"]);
    expect(linked.body.user).toMatchObject({ id: ada.user.id, authType: "password", oidcConnected: true });
    expect(await storedUser(ada.user.id)).toMatchObject({ oidcIssuer: op.issuer, oidcSubject: adaAtIdp.sub });

    const viaIdp = await signInWith(adaAtIdp, await startLogin());
    expect(viaIdp.status).toBe(200);
    expect(viaIdp.body.user.id).toBe(ada.user.id);

    // alice's identity belongs to the first account: ada cannot take it.
    const taken = await signInWith({ sub: "alice-0001" }, await startLink(ada.token));
    expect(taken.status).toBe(409);
    expect(taken.body.detail).toBe("This TestID account is already linked to another Hoist account");
    expect((await storedUser(ada.user.id)).oidcSubject).toBe(adaAtIdp.sub);
    expect(await t.deps.store.get(userKeys.oidc(op.issuer, "alice-0001"))).toMatchObject({ userId: first.user.id });
  });

  it("unlinks, freeing the identity; refuses to unlink an account that signs in only with it", async () => {
    const carol = await t.register("carol");
    const carolAtIdp = op.addAccount({ sub: "carol-at-idp", email: "carol2@idp.example", email_verified: true });
    expect((await signInWith(carolAtIdp, await startLink(carol.token))).status).toBe(200);

    const out = await t.json<{ user: User }>("DELETE", "/api/auth/oidc/link", { token: carol.token });
    expect(out.status).toBe(200);
    expect(out.body.user).toMatchObject({ id: carol.user.id, oidcConnected: false });
    const item = await storedUser(carol.user.id);
    expect([item.oidcIssuer, item.oidcSubject]).toEqual([undefined, undefined]);
    expect(await t.deps.store.get(userKeys.oidc(op.issuer, carolAtIdp.sub))).toBeUndefined();
    const again = await t.json<Problem>("DELETE", "/api/auth/oidc/link", { token: carol.token });
    expect(again.status).toBe(409);
    expect(again.body.detail).toBe("No TestID account is linked to this account");

    // Free again: signing in with it now creates a new account.
    const fresh = await signInWith(carolAtIdp, await startLogin());
    expect(fresh.status).toBe(200);
    expect(fresh.body.user.id).not.toBe(carol.user.id);

    const only = await t.json<Problem>("DELETE", "/api/auth/oidc/link", { token: first.token });
    expect(only.status).toBe(409);
    expect(only.body.detail).toMatch(/signs in only with TestID/);
    expect((await storedUser(first.user.id)).oidcSubject).toBe("alice-0001");
  });

  it("needs a signed-in user to link or unlink", async () => {
    expect((await t.call("POST", "/api/auth/oidc/link")).status).toBe(401);
    expect((await t.call("DELETE", "/api/auth/oidc/link")).status).toBe(401);
  });

  it("audits sign-up, sign-in, link and unlink without tokens", async () => {
    const all = (await t.json<Audit>("GET", "/api/audit-logs?limit=100", { token: first.token })).body.items;
    const oidc = (action: string) => all.filter((i) => i.action === action && i.details.method === "oidc");
    expect(oidc("auth.register").length).toBeGreaterThanOrEqual(2);
    expect(oidc("auth.login").length).toBeGreaterThanOrEqual(2);
    expect(all.filter((i) => i.action === "auth.oidc_linked").length).toBeGreaterThanOrEqual(2);
    expect(all.filter((i) => i.action === "auth.oidc_unlinked")).toHaveLength(1);
    expect(JSON.stringify(all)).not.toContain(op.clientSecret);
  });

  it("derives a free, valid username", () => {
    const first = (claims: Parameters<typeof usernameCandidates>[0]) => usernameCandidates(claims).next().value;
    expect(first({ preferredUsername: "jane.doe@corp.example" })).toBe("jane.doe");
    expect(first({ email: "x@idp.example" })).toBe("x-user");
    expect(first({ name: "Zoë Ångström" })).toBe("Zo-ngstr-m");
    expect(first({})).toBe("user");
    expect([...usernameCandidates({ preferredUsername: "a".repeat(50) })][1]).toBe(`${"a".repeat(37)}-2`);
  });
});

describe("configuration and the front end", () => {
  it("answers 503 when OpenID Connect is not configured", async () => {
    const bare = await testClient();
    const res = await bare.json<Problem>("GET", "/api/auth/oidc/login");
    expect(res.status).toBe(503);
    expect(res.body.detail).toBe("OpenID Connect sign-in is not configured");
    const reg = await bare.register("nooidc");
    expect((await bare.call("POST", "/api/auth/oidc/link", { token: reg.token })).status).toBe(503);
    expect((await bare.call("GET", `/api/auth/oidc/callback?code=a&state=${"A".repeat(43)}`)).status).toBe(503);
  });

  it("stops the start when only some HOIST_OIDC_* variables are set", async () => {
    await expect(testClient({ HOIST_OIDC_ISSUER: op.issuer })).rejects.toThrow(
      /HOIST_OIDC_CLIENT_ID, HOIST_OIDC_CLIENT_SECRET are not set/,
    );
    await expect(testClient({ ...op.env(), HOIST_OIDC_ISSUER: "http://idp.example" })).rejects.toThrow(
      /HOIST_OIDC_ISSUER: an https URL/,
    );
  });

  it("answers 502 when the provider cannot be reached", async () => {
    const down = await testClient({ ...op.env(), HOIST_OIDC_ISSUER: "http://127.0.0.1:9" });
    const res = await down.json<Problem>("GET", "/api/auth/oidc/login");
    expect(res.status).toBe(502);
    expect(res.body.detail).toBe("Could not reach TestID for the discovery request");
  });

  it("redirects to the front end with the tokens, or #linked=oidc", async () => {
    const web = await hoistFor({ HOIST_FRONTEND_URL: "https://app.example.com/auth" });
    const dave = op.addAccount({ sub: "dave-0001", email: "dave@idp.example", preferred_username: "dave" });
    op.signInAs(dave);
    const callback = await viaProvider(await startLogin(web));
    const res = await web.call("GET", callback, inBrowser(callback, { accept: "text/html" }));
    expect(res.status).toBe(302);
    const to = new URL(res.headers.get("location") ?? "");
    expect(`${to.origin}${to.pathname}`).toBe("https://app.example.com/auth");
    const token = new URLSearchParams(to.hash.slice(1)).get("token") ?? "";
    expect((await web.call("GET", "/api/auth/me", { token })).status).toBe(200);

    const erin = await web.register("erin");
    const erinAtIdp = op.addAccount({ sub: "erin-0001" });
    op.signInAs(erinAtIdp);
    const linkBack = await viaProvider(await startLink(erin.token, web));
    const linked = await web.call("GET", linkBack, inBrowser(linkBack, { accept: "text/html" }));
    expect(linked.headers.get("location")).toBe("https://app.example.com/auth#linked=oidc");
  });
});
