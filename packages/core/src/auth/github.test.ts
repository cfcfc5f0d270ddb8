import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HoistError } from "../errors.ts";
import { FakeGitHub, type FakeGitHubUser } from "../testing/fake-github.ts";
import { type TestClient, testClient } from "../testing/http.ts";
import { type UserItem, userKeys } from "../users/entity.ts";
import { authKeys } from "./entity.ts";
import { GitHubClient, githubTokenFor, type OAuthStateItem, usernameCandidates } from "./github.ts";

type User = { id: string; username: string; email: string; role: string; authType: string; githubConnected: boolean };
type Session = { user: User; token: string; refreshToken: string; expiresIn: number };

const ACCEPT_JSON = { accept: "application/json" };
let gh: FakeGitHub;
let t: TestClient;
let octocat: FakeGitHubUser;
let first: Session;

beforeAll(async () => {
  gh = await FakeGitHub.start();
  t = await testClient(gh.env());
  octocat = gh.addUser({ login: "octocat", name: "The Octocat" });
});
afterAll(() => gh.stop());

/** What a browser does at GitHub: open the authorize URL, get redirected back. Returns the callback's path and query. */
async function throughGitHub(authorizeUrl: string): Promise<string> {
  const res = await fetch(authorizeUrl, { redirect: "manual" });
  expect(res.status).toBe(302);
  const back = new URL(res.headers.get("location") ?? "");
  expect(back.pathname).toBe("/api/auth/github/callback");
  return `${back.pathname}${back.search}`;
}

/** What each flow's browser holds: the `hoist_oauth` cookie its start response set, by the flow's state. */
const jar = new Map<string, string>();
const stateOf = (url: string) => new URL(url, "http://localhost").searchParams.get("state") ?? "";
const COOKIE = /^hoist_oauth=([A-Za-z0-9_-]{43});/;

/** Keeps the flow cookie from a start response, as the browser would. */
function keepCookie(res: Response, authorizeUrl: string): string {
  const cookie = COOKIE.exec(res.headers.get("set-cookie") ?? "")?.[1];
  expect(cookie).toBeDefined();
  jar.set(stateOf(authorizeUrl), `hoist_oauth=${cookie}`);
  return authorizeUrl;
}

/** The browser that started the flow coming back to the callback: with its cookie. */
const inBrowser = (callback: string, headers: Record<string, string> = {}) => {
  const cookie = jar.get(stateOf(callback));
  return { headers: { ...headers, ...(cookie ? { cookie } : {}) } };
};

async function startLogin(client = t): Promise<string> {
  const res = await client.call("GET", "/api/auth/github/login");
  expect(res.status).toBe(302);
  return keepCookie(res, res.headers.get("location") ?? "");
}

async function startLink(token: string, client = t): Promise<string> {
  const res = await client.json<{ authorizeUrl: string }>("POST", "/api/auth/github/link", { token });
  expect(res.status).toBe(200);
  return keepCookie(res.res, res.body.authorizeUrl);
}

async function viaGitHub<T = Session>(user: FakeGitHubUser, authorizeUrl: string, client = t) {
  gh.signInAs(user);
  const callback = await throughGitHub(authorizeUrl);
  return client.json<T & { detail?: string }>("GET", callback, inBrowser(callback, ACCEPT_JSON));
}

const storedUser = async (id: string) => (await t.deps.store.get<UserItem>(userKeys.user(id))) as UserItem;

describe("GET /api/auth/github/login", () => {
  it("redirects to GitHub with state, PKCE S256 and the scopes, and stores the state for 10 minutes", async () => {
    const before = Math.floor(Date.now() / 1000);
    const location = new URL(await startLogin());
    expect(`${location.origin}${location.pathname}`).toBe(`${gh.url}/login/oauth/authorize`);
    const q = Object.fromEntries(location.searchParams);
    expect(q).toEqual({
      client_id: gh.clientId,
      redirect_uri: "http://localhost/api/auth/github/callback",
      state: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      scope: "read:user user:email repo admin:repo_hook",
      code_challenge: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      code_challenge_method: "S256",
    });
    const item = await t.deps.store.get<OAuthStateItem>(authKeys.oauthState(q.state ?? ""));
    expect(item).toMatchObject({ entity: "oauth-state", mode: "login", codeVerifier: expect.any(String) });
    expect(item?.userId).toBeUndefined();
    expect(item?.expiresAt).toBeGreaterThanOrEqual(before + 600);
    expect(item?.expiresAt).toBeLessThanOrEqual(before + 601);
    expect(q.code_challenge).not.toBe(item?.codeVerifier);
  });

  it("uses HOIST_PUBLIC_URL for the redirect_uri when set", async () => {
    const behindProxy = await testClient({ ...gh.env(), HOIST_PUBLIC_URL: "https://hoist.example.com/" });
    const location = new URL(await startLogin(behindProxy));
    expect(location.searchParams.get("redirect_uri")).toBe("https://hoist.example.com/api/auth/github/callback");
  });

  it("answers 503 when GitHub sign-in is not configured", async () => {
    const bare = await testClient({ HOIST_GITHUB_URL: gh.url, HOIST_GITHUB_API_URL: gh.apiUrl });
    const res = await bare.json("GET", "/api/auth/github/login");
    expect(res.status).toBe(503);
    expect(res.res.headers.get("content-type")).toBe("application/problem+json");
    expect(res.body.detail).toBe("GitHub sign-in is not configured");
    const reg = await bare.register("nogithub");
    expect((await bare.call("POST", "/api/auth/github/link", { token: reg.token })).status).toBe(503);
  });
});

describe("the OAuth flow end to end against the loopback GitHub", () => {
  it("signs up a new user (the first one is admin) and stores the GitHub token sealed", async () => {
    const res = await viaGitHub(octocat, await startLogin());
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    first = res.body;
    expect(first.user).toMatchObject({
      username: "octocat",
      email: "octocat@users.example.com",
      role: "admin",
      authType: "github",
      githubConnected: true,
    });
    expect(first.expiresIn).toBe(900);
    expect(res.res.headers.get("cache-control")).toBe("no-store");

    const issued = gh.issuedTokens.at(-1)?.token ?? "";
    expect(JSON.stringify(res.body)).not.toContain(issued);
    const item = await storedUser(first.user.id);
    expect(item).toMatchObject({ githubId: String(octocat.id), githubLogin: "octocat" });
    expect(item.passwordHash).toBeUndefined();
    expect(item.githubToken).toMatch(/^hv1\./);
    expect(item.githubToken).not.toContain(issued);
    expect(await githubTokenFor(t.deps, item)).toBe(issued);
    await expect(t.deps.keyVault.decrypt(item.githubToken ?? "", { ownerId: "usr_other" })).rejects.toThrow();

    const me = await t.json<{ user: User }>("GET", "/api/auth/me", { token: first.token });
    expect(me.body.user.id).toBe(first.user.id);
  });

  it("sent GitHub what it expects: PKCE verifier, secret, redirect_uri and API headers", () => {
    const exchange = gh.requests.find((r) => r.path === "/login/oauth/access_token");
    const form = new URLSearchParams(exchange?.body);
    expect(exchange?.headers.accept).toBe("application/json");
    expect(form.get("client_secret")).toBe(gh.clientSecret);
    expect(form.get("code_verifier")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(form.get("redirect_uri")).toBe("http://localhost/api/auth/github/callback");
    const profile = gh.requests.find((r) => r.path === "/user");
    expect(profile?.headers).toMatchObject({
      authorization: `Bearer ${gh.issuedTokens[0]?.token}`,
      accept: "application/vnd.github+json",
      "x-github-api-version": "2022-11-28",
      "user-agent": "hoist",
    });
    // The profile hid the email, so the primary verified one came from /user/emails.
    expect(gh.requests.some((r) => r.path === "/user/emails")).toBe(true);
  });

  it("signs the same GitHub user in again as the same account and keeps the newest token", async () => {
    const again = await viaGitHub(octocat, await startLogin());
    expect(again.status).toBe(200);
    expect(again.body.user.id).toBe(first.user.id);
    expect(again.body.token).not.toBe(first.token);
    const item = await storedUser(first.user.id);
    expect(await githubTokenFor(t.deps, item)).toBe(gh.issuedTokens.at(-1)?.token);
  });

  it("derives a free, valid username when the GitHub login is taken or too short", async () => {
    await t.register("hubot");
    const hubot = gh.addUser({ login: "hubot", email: "hubot@github.example.com" });
    const res = await viaGitHub(hubot, await startLogin());
    expect(res.status).toBe(200);
    expect(res.body.user).toMatchObject({ username: "hubot-2", email: "hubot@github.example.com", role: "member" });

    const tiny = gh.addUser({ login: "ab" });
    expect((await viaGitHub(tiny, await startLogin())).body.user.username).toBe("ab-gh");
    expect([...usernameCandidates("a".repeat(39), "7")][1]).toBe(`${"a".repeat(37)}-2`);
  });

  it("refuses sign-up when the email belongs to an account already: it never links by email", async () => {
    const grace = await t.register("grace");
    const impostor = gh.addUser({ login: "gracehopper", email: "grace@example.com" });
    const res = await viaGitHub(impostor, await startLogin());
    expect(res.status).toBe(409);
    expect(res.body.detail).toBe("An account with this email exists; sign in and link GitHub from it");
    expect((await storedUser(grace.user.id)).githubId).toBeUndefined();
    expect(await t.deps.store.get(userKeys.github(String(impostor.id)))).toBeUndefined();
  });

  it("refuses a GitHub account without a verified email", async () => {
    const ghost = gh.addUser({
      login: "ghost",
      emails: [{ email: "g@x.io", primary: true, verified: false, visibility: null }],
    });
    const res = await viaGitHub(ghost, await startLogin());
    expect(res.status).toBe(400);
    expect(res.body.detail).toMatch(/verified primary email/);
  });

  it("links GitHub to a password account, and refuses one linked elsewhere with 409", async () => {
    const ada = await t.register("ada");
    const adaGh = gh.addUser({ login: "ada-lovelace" });
    const linked = await viaGitHub<{ user: User }>(adaGh, await startLink(ada.token));
    expect(linked.status).toBe(200);
    expect(linked.body).toEqual({ user: expect.objectContaining({ id: ada.user.id, githubConnected: true }) });
    expect(Object.keys(linked.body)).toEqual(["user"]);

    const state = new URL(await startLink(ada.token)).searchParams.get("state") ?? "";
    expect(await t.deps.store.get(authKeys.oauthState(state))).toMatchObject({ mode: "link", userId: ada.user.id });

    const me = await t.json<{ user: User }>("GET", "/api/auth/me", { token: ada.token });
    expect(me.body.user).toMatchObject({ githubConnected: true, authType: "password" });
    const item = await storedUser(ada.user.id);
    expect(item.githubLogin).toBe("ada-lovelace");
    expect(await githubTokenFor(t.deps, item)).toBe(gh.issuedTokens.at(-1)?.token);

    // Signing in with that GitHub account now opens ada's account.
    const viaGh = await viaGitHub(adaGh, await startLogin());
    expect(viaGh.body.user.id).toBe(ada.user.id);

    // octocat is linked to the first user: ada cannot take it.
    const taken = await viaGitHub(octocat, await startLink(ada.token));
    expect(taken.status).toBe(409);
    expect(taken.body.detail).toMatch(/already linked to another/);
    expect((await storedUser(ada.user.id)).githubId).toBe(String(adaGh.id));

    // Linking another GitHub account replaces the first and frees it.
    const adaAlt = gh.addUser({ login: "ada-alt" });
    expect((await viaGitHub(adaAlt, await startLink(ada.token))).status).toBe(200);
    expect((await storedUser(ada.user.id)).githubLogin).toBe("ada-alt");
    expect(await t.deps.store.get(userKeys.github(String(adaGh.id)))).toBeUndefined();
    expect(await t.deps.store.get(userKeys.github(String(adaAlt.id)))).toMatchObject({ userId: ada.user.id });
  });

  it("unlinks, and refuses to unlink an account that has only GitHub to sign in with", async () => {
    const bob = await t.register("bob");
    const bobGh = gh.addUser({ login: "bob-gh" });
    expect((await viaGitHub(bobGh, await startLink(bob.token))).status).toBe(200);

    const out = await t.json<{ user: User }>("DELETE", "/api/auth/github/link", { token: bob.token });
    expect(out.status).toBe(200);
    expect(out.body.user).toMatchObject({ id: bob.user.id, githubConnected: false });
    const item = await storedUser(bob.user.id);
    expect([item.githubId, item.githubLogin, item.githubToken]).toEqual([undefined, undefined, undefined]);
    expect(await t.deps.store.get(userKeys.github(String(bobGh.id)))).toBeUndefined();
    await expect(githubTokenFor(t.deps, item)).rejects.toThrow(/No GitHub account is linked/);
    expect((await t.call("DELETE", "/api/auth/github/link", { token: bob.token })).status).toBe(409);

    // The GitHub account is free again: signing in with it now creates a new account.
    const fresh = await viaGitHub(bobGh, await startLogin());
    expect(fresh.status).toBe(200);
    expect(fresh.body.user.id).not.toBe(bob.user.id);

    const githubOnly = await t.json("DELETE", "/api/auth/github/link", { token: first.token });
    expect(githubOnly.status).toBe(409);
    expect(githubOnly.body.detail).toMatch(/only with GitHub/);
    expect((await storedUser(first.user.id)).githubId).toBe(String(octocat.id));
  });

  it("refuses a disabled account with 403", async () => {
    const dan = gh.addUser({ login: "dan" });
    const signup = await viaGitHub(dan, await startLogin());
    const patched = await t.call("PATCH", `/api/users/${signup.body.user.id}`, {
      token: first.token,
      body: { disabled: true },
    });
    expect(patched.status).toBe(200);
    expect((await viaGitHub(dan, await startLogin())).status).toBe(403);
  });

  it("redirects to the front end with the tokens (or #linked=github) in the fragment", async () => {
    const web = await testClient({ ...gh.env(), HOIST_FRONTEND_URL: "https://app.example.com/auth" });
    const eve = gh.addUser({ login: "eve" });
    gh.signInAs(eve);
    const callback = await throughGitHub(await startLogin(web));
    const res = await web.call("GET", callback, inBrowser(callback, { accept: "text/html,*/*;q=0.8" }));
    expect(res.status).toBe(302);
    const to = new URL(res.headers.get("location") ?? "");
    expect(`${to.origin}${to.pathname}`).toBe("https://app.example.com/auth");
    const fragment = new URLSearchParams(to.hash.slice(1));
    expect(fragment.get("expiresIn")).toBe("900");
    const token = fragment.get("token") ?? "";
    expect((await web.call("GET", "/api/auth/me", { token })).status).toBe(200);
    expect(fragment.get("refreshToken")).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const pw = await web.register("frank");
    const frankGh = gh.addUser({ login: "frank-gh" });
    gh.signInAs(frankGh);
    const linkCallback = await throughGitHub(await startLink(pw.token, web));
    const linkBack = await web.call("GET", linkCallback, inBrowser(linkCallback));
    expect(linkBack.status).toBe(302);
    expect(linkBack.headers.get("location")).toBe("https://app.example.com/auth#linked=github");

    // A script asking for JSON still gets JSON.
    gh.signInAs(eve);
    const jsonCallback = await throughGitHub(await startLogin(web));
    const json = await web.json<Session>("GET", jsonCallback, inBrowser(jsonCallback, ACCEPT_JSON));
    expect(json.status).toBe(200);
    expect(json.body.user.username).toBe("eve");
  });
});

describe("state and code are checked", () => {
  it("refuses a replayed state", async () => {
    gh.signInAs(octocat);
    const callback = await throughGitHub(await startLogin());
    expect((await t.call("GET", callback, inBrowser(callback, ACCEPT_JSON))).status).toBe(200);
    const replay = await t.json("GET", callback, inBrowser(callback, ACCEPT_JSON));
    expect(replay.status).toBe(400);
    expect(replay.body.detail).toBe("Invalid or expired OAuth state");
    expect(replay.res.headers.get("content-type")).toBe("application/problem+json");
  });

  it("refuses a forged state without calling GitHub", async () => {
    const before = gh.requests.length;
    const forged = await t.json("GET", `/api/auth/github/callback?code=abc123&state=${"A".repeat(43)}`);
    expect(forged.status).toBe(400);
    expect(forged.body.detail).toBe("Invalid or expired OAuth state");
    expect(gh.requests.length).toBe(before);
  });

  it("refuses an expired state", async () => {
    const state = "expired-state-0123456789";
    const now = Date.now();
    const item: OAuthStateItem = {
      ...authKeys.oauthState(state),
      entity: "oauth-state",
      codeVerifier: "v".repeat(43),
      redirectUri: "http://localhost/api/auth/github/callback",
      mode: "login",
      browserNonceSha256: "n".repeat(43),
      createdAt: now - 700_000,
      expiresAt: Math.floor(now / 1000) - 100,
    };
    await t.deps.store.put(item);
    const res = await t.json("GET", `/api/auth/github/callback?code=abc&state=${state}`);
    expect(res.status).toBe(400);
    expect(res.body.detail).toBe("Invalid or expired OAuth state");
  });

  it("refuses a code from another flow: the PKCE verifier does not match", async () => {
    gh.signInAs(octocat);
    const a = new URL(`http://localhost${await throughGitHub(await startLogin())}`);
    const b = new URL(`http://localhost${await throughGitHub(await startLogin())}`);
    const crossed = `/api/auth/github/callback?code=${a.searchParams.get("code")}&state=${b.searchParams.get("state")}`;
    const res = await t.json("GET", crossed, inBrowser(crossed));
    expect(res.status).toBe(400);
    expect(res.body.detail).toMatch(/code_verifier/);
  });

  it("answers 400 when GitHub refuses the code", async () => {
    const callback = `/api/auth/github/callback?code=not-a-real-code&state=${stateOf(await startLogin())}`;
    const res = await t.json("GET", callback, inBrowser(callback));
    expect(res.status).toBe(400);
    expect(res.body.detail).toBe("GitHub refused the authorization code: The code passed is incorrect or expired.");
  });

  it("answers 400 when the user declines on GitHub, and the state is spent", async () => {
    gh.signInAs(null);
    const callback = await throughGitHub(await startLogin());
    expect(callback).toContain("error=access_denied");
    const res = await t.json("GET", callback, inBrowser(callback));
    expect(res.status).toBe(400);
    expect(res.body.detail).toBe("The GitHub authorization was declined; nothing was changed");
    expect((await t.json("GET", callback, inBrowser(callback))).body.detail).toBe("Invalid or expired OAuth state");
  });

  it("answers 502 when GitHub fails or is down", async () => {
    gh.signInAs(octocat);
    gh.failNext("/login/oauth/access_token", 503);
    const failing = await throughGitHub(await startLogin());
    const five = await t.json("GET", failing, inBrowser(failing));
    expect(five.status).toBe(502);
    expect(five.body.detail).toBe("GitHub answered the code exchange with HTTP 503");

    gh.failNext(`${FakeGitHub.API_PREFIX}/user`, 500);
    const profileFails = await throughGitHub(await startLogin());
    expect((await t.json("GET", profileFails, inBrowser(profileFails))).status).toBe(502);

    const down = await FakeGitHub.start();
    const client = await testClient(down.env());
    down.signInAs(down.addUser({ login: "someone" }));
    const callback = await throughGitHub(await startLogin(client));
    await down.stop();
    const res = await client.json("GET", callback, inBrowser(callback, ACCEPT_JSON));
    expect(res.status).toBe(502);
    expect(res.body.detail).toBe("Could not reach GitHub for the code exchange");
  });

  it("times out a slow GitHub with a clear 502", async () => {
    const client = new GitHubClient({ url: gh.url, apiUrl: gh.apiUrl, timeoutMs: 100 });
    gh.delayMs = 1000;
    try {
      const err = await client.user("gho_x").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HoistError);
      expect(err).toMatchObject({
        status: 502,
        message: "GitHub did not answer the user profile request within 0.1 s",
      });
    } finally {
      gh.delayMs = 0;
    }
  });

  it("calls Hoist's own misconfiguration a 502, not the user's fault", async () => {
    const wrong = await testClient({ ...gh.env(), HOIST_GITHUB_CLIENT_SECRET: "wrong" });
    gh.signInAs(octocat);
    const callback = await throughGitHub(await startLogin(wrong));
    const res = await wrong.json("GET", callback, inBrowser(callback));
    expect(res.status).toBe(502);
    expect(res.body.detail).toMatch(/incorrect_client_credentials/);
    expect(res.body.detail).not.toContain("wrong");
  });
});

describe("the flow is bound to the browser that started it (hoist_oauth cookie)", () => {
  const OTHER_BROWSER = "This sign-in was started in another browser; start again";
  type Audit = { items: { action: string; userId: string | null; details: Record<string, unknown> }[] };
  const mismatches = async () =>
    (await t.json<Audit>("GET", "/api/audit-logs?action=auth.oauth_state_mismatch&limit=100", { token: first.token }))
      .body.items;

  it("sets an HttpOnly, SameSite=Lax cookie scoped to the callback for 10 minutes, storing only its hash", async () => {
    const res = await t.call("GET", "/api/auth/github/login");
    const cookie = res.headers.get("set-cookie") ?? "";
    const nonce = COOKIE.exec(cookie)?.[1] ?? "";
    expect(nonce).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const attrs = cookie.split(/;\s*/).slice(1);
    expect(attrs.sort()).toEqual(["HttpOnly", "Max-Age=600", "Path=/api/auth/github/callback", "SameSite=Lax"]);
    const item = await t.deps.store.get<OAuthStateItem>(
      authKeys.oauthState(stateOf(res.headers.get("location") ?? "")),
    );
    expect(item?.browserNonceSha256).toBe(createHash("sha256").update(nonce).digest("base64url"));
    expect(JSON.stringify(item)).not.toContain(nonce);

    // The link call (a fetch from the dashboard) sets one too.
    const link = await t.call("POST", "/api/auth/github/link", { token: first.token });
    expect(link.headers.get("set-cookie")).toMatch(
      /^hoist_oauth=[A-Za-z0-9_-]{43}; Max-Age=600; Path=\/api\/auth\/github\/callback; HttpOnly; SameSite=Lax$/,
    );
  });

  it("marks the cookie Secure over https", async () => {
    const behindProxy = await testClient({ ...gh.env(), HOIST_PUBLIC_URL: "https://hoist.example.com" });
    const viaProxy = await behindProxy.call("GET", "/api/auth/github/login");
    expect(viaProxy.headers.get("set-cookie")).toMatch(/; Secure(;|$)/);
    const direct = await t.app.request(
      "https://hoist.example.com/api/auth/github/login",
      {},
      {
        incoming: { socket: { remoteAddress: "127.0.0.1" } },
      },
    );
    expect(direct.headers.get("set-cookie")).toMatch(/; Secure(;|$)/);
  });

  it("lets a listed dashboard origin store the cookie (credentials), never with a wildcard origin", async () => {
    const preflight = (client: TestClient) =>
      client.app.request("/api/auth/github/link", {
        method: "OPTIONS",
        headers: { Origin: "https://dash.example", "Access-Control-Request-Method": "POST" },
      });
    const listed = await testClient({ ...gh.env(), HOIST_CORS_ORIGINS: "https://dash.example" });
    const ok = await preflight(listed);
    expect(ok.headers.get("access-control-allow-origin")).toBe("https://dash.example");
    expect(ok.headers.get("access-control-allow-credentials")).toBe("true");
    const wildcard = await testClient({ ...gh.env(), HOIST_CORS_ORIGINS: "*" });
    const any = await preflight(wildcard);
    expect(any.headers.get("access-control-allow-origin")).toBe("*");
    expect(any.headers.get("access-control-allow-credentials")).toBeNull();
  });

  it("clears the cookie on every callback answer", async () => {
    const cleared = /^hoist_oauth=; Max-Age=0; Path=\/api\/auth\/github\/callback; HttpOnly; SameSite=Lax$/;
    const ok = await viaGitHub(octocat, await startLogin());
    expect(ok.status).toBe(200);
    expect(ok.res.headers.get("set-cookie")).toMatch(cleared);
    const bad = await t.call("GET", `/api/auth/github/callback?code=abc&state=${"A".repeat(43)}`);
    expect(bad.status).toBe(400);
    expect(bad.headers.get("set-cookie")).toMatch(cleared);
    const malformed = await t.call("GET", "/api/auth/github/callback");
    expect(malformed.status).toBe(400);
    expect(malformed.headers.get("set-cookie")).toMatch(cleared);
  });

  it("refuses a callback without the cookie: nobody signs in, GitHub is not called, the state is spent", async () => {
    const newcomer = gh.addUser({ login: "newcomer" });
    gh.signInAs(newcomer);
    const callback = await throughGitHub(await startLogin());
    const before = gh.requests.length;
    const res = await t.json<{ detail: string; token?: string }>("GET", callback, { headers: ACCEPT_JSON });
    expect(res.status).toBe(400);
    expect(res.res.headers.get("content-type")).toBe("application/problem+json");
    expect(res.body.detail).toBe(OTHER_BROWSER);
    expect(res.body.token).toBeUndefined();
    expect(gh.requests.length).toBe(before);
    expect(await t.deps.store.get(userKeys.github(String(newcomer.id)))).toBeUndefined();
    // The right browser cannot finish it afterwards either: the state was consumed.
    const late = await t.json("GET", callback, inBrowser(callback, ACCEPT_JSON));
    expect(late.body.detail).toBe("Invalid or expired OAuth state");
  });

  it("refuses a callback carrying another flow's cookie", async () => {
    gh.signInAs(octocat);
    const mine = await throughGitHub(await startLogin());
    const other = await startLogin();
    const res = await t.json("GET", mine, inBrowser(other, ACCEPT_JSON));
    expect(res.status).toBe(400);
    expect(res.body.detail).toBe(OTHER_BROWSER);
    const junk = await throughGitHub(await startLogin());
    const forged = await t.json("GET", junk, { headers: { ...ACCEPT_JSON, cookie: `hoist_oauth=${"x".repeat(43)}` } });
    expect(forged.body.detail).toBe(OTHER_BROWSER);
  });

  it("stops the link attack: a victim finishing an attacker's link flow links nothing", async () => {
    const mallory = await t.register("mallory");
    const victim = gh.addUser({ login: "victim" });
    const tokensBefore = gh.issuedTokens.length;

    // The victim already authorised Hoist on GitHub, so GitHub sends them straight back to the callback:
    // once with no Hoist cookie at all, once with a cookie of their own (from a sign-in they started).
    gh.signInAs(victim);
    const lured = await throughGitHub(await startLink(mallory.token));
    const noCookie = await t.json("GET", lured, { headers: ACCEPT_JSON });
    expect(noCookie.status).toBe(400);
    expect(noCookie.body.detail).toBe(OTHER_BROWSER);

    const victimsOwn = await startLogin();
    const luredAgain = await throughGitHub(await startLink(mallory.token));
    const ownCookie = await t.json("GET", luredAgain, inBrowser(victimsOwn, ACCEPT_JSON));
    expect(ownCookie.status).toBe(400);
    expect(ownCookie.body.detail).toBe(OTHER_BROWSER);

    const item = await storedUser(mallory.user.id);
    expect([item.githubId, item.githubLogin, item.githubToken]).toEqual([undefined, undefined, undefined]);
    expect(await t.deps.store.get(userKeys.github(String(victim.id)))).toBeUndefined();
    expect(gh.issuedTokens.length).toBe(tokensBefore); // The victim's code was never even exchanged.

    const audit = (await mismatches()).filter((i) => i.userId === mallory.user.id);
    expect(audit).toHaveLength(2);
    expect(audit.map((i) => i.details).sort((a, b) => String(a.cookie).localeCompare(String(b.cookie)))).toEqual([
      { method: "github", mode: "link", cookie: "different" },
      { method: "github", mode: "link", cookie: "missing" },
    ]);
    const all = JSON.stringify(await mismatches());
    for (const { token } of gh.issuedTokens) expect(all).not.toContain(token);
    expect(all).not.toContain("hoist_oauth=");
  });
});

describe("audit log", () => {
  it("records GitHub sign-up, sign-in, link and unlink without tokens", async () => {
    const audit = await t.json<{ items: { action: string; details: Record<string, unknown> }[] }>(
      "GET",
      "/api/audit-logs?limit=100",
      { token: first.token },
    );
    expect(audit.status).toBe(200);
    const byAction = (action: string) => audit.body.items.filter((i) => i.action === action);
    expect(byAction("auth.register").some((i) => i.details.method === "github")).toBe(true);
    expect(byAction("auth.login").some((i) => i.details.method === "github")).toBe(true);
    expect(byAction("auth.github_linked").length).toBeGreaterThanOrEqual(2);
    expect(byAction("auth.github_unlinked")).toHaveLength(1);
    const all = JSON.stringify(audit.body);
    for (const { token } of gh.issuedTokens) expect(all).not.toContain(token);
    expect(all).not.toContain("hv1.");
  });
});

describe("bad input is a 400 problem, never a 500", () => {
  const state = "A".repeat(43);
  it.each([
    ["no code and no state", "/api/auth/github/callback"],
    ["no state", "/api/auth/github/callback?code=abc"],
    ["no code", `/api/auth/github/callback?state=${state}`],
    ["empty code", `/api/auth/github/callback?code=&state=${state}`],
    ["huge code", `/api/auth/github/callback?code=${"c".repeat(5000)}&state=${state}`],
    ["huge state", `/api/auth/github/callback?code=abc&state=${"s".repeat(5000)}`],
    ["state with odd characters", `/api/auth/github/callback?code=abc&state=${encodeURIComponent("a b<script>")}`],
    ["odd error code", `/api/auth/github/callback?state=${state}&error=${encodeURIComponent("<b>hi</b>")}`],
  ])("%s", async (_name, path) => {
    const res = await t.json<{ detail: string; errors: unknown[] }>("GET", path, { headers: ACCEPT_JSON });
    expect(res.status).toBe(400);
    expect(res.res.headers.get("content-type")).toBe("application/problem+json");
    expect(res.body.errors.length).toBeGreaterThan(0);
  });

  it("needs a signed-in user to link or unlink", async () => {
    expect((await t.call("POST", "/api/auth/github/link")).status).toBe(401);
    expect((await t.call("DELETE", "/api/auth/github/link")).status).toBe(401);
    expect((await t.call("PUT", "/api/auth/github/link", { token: first.token })).status).toBe(405);
  });

  it("documents the routes in the OpenAPI document", async () => {
    const doc = await t.json<{ paths: Record<string, Record<string, unknown>> }>("GET", "/openapi.json");
    expect(Object.keys(doc.body.paths["/api/auth/github/link"] ?? {}).sort()).toEqual(["delete", "post"]);
    expect(doc.body.paths["/api/auth/github/callback"]).toHaveProperty("get");
    expect(doc.body.paths["/api/auth/github/login"]).toHaveProperty("get");
  });
});
