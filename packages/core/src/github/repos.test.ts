import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeGitHub, type FakeGitHubUser } from "../testing/fake-github.ts";
import { linkGitHub, makeApps } from "../testing/github-setup.ts";
import { type TestClient, testClient } from "../testing/http.ts";
import {
  type RepoHookItem,
  type RepoSecretItem,
  repoHookKey,
  repoSecretContext,
  repoSecretKey,
} from "./repo-entity.ts";

type Json = Record<string, unknown>;
const SECRET = "repo-test-webhook-secret-0123456789";
const HOOK_URL = "https://hoist.example.com/api/webhooks/github";

let gh: FakeGitHub;
let t: TestClient;
let octo: FakeGitHubUser;
let alice: { token: string; id: string };
let bob: { token: string; id: string };
const apps: Record<string, string> = {};

beforeAll(async () => {
  gh = await FakeGitHub.start();
  t = await testClient({
    ...gh.env(),
    HOIST_GITHUB_WEBHOOK_SECRET: SECRET,
    HOIST_PUBLIC_URL: "https://hoist.example.com/",
  });
  octo = gh.addUser({ login: "octo" });
  for (const name of ["shop", "api", "docs", "infra", "site"]) gh.addRepo(octo, name);
  gh.addRepo(gh.addUser({ login: "stranger" }), "secret");
  const a = await t.register("alice");
  const b = await t.register("bob");
  alice = { token: a.token, id: a.user.id };
  bob = { token: b.token, id: b.user.id };
  await linkGitHub(t, alice.id, gh, octo);
  Object.assign(
    apps,
    await makeApps(t, alice, [
      ["web", null],
      ["ci", { fullName: "octo/api", branch: "dev", autoDeploy: false, deployOn: "ci-success" }],
    ]),
  );
  Object.assign(apps, await makeApps(t, bob, [["bobweb", null]]));
});
afterAll(() => gh.stop());

const userRepoCalls = () => gh.requests.filter((r) => r.path === "/user/repos");

describe("GET /api/github/repos", () => {
  it("is 409 with a clear detail when no GitHub account is linked", async () => {
    const res = await t.json<Json>("GET", "/api/github/repos", { token: bob.token });
    expect(res.status).toBe(409);
    expect(res.res.headers.get("content-type")).toContain("application/problem+json");
    expect(res.body.detail).toMatch(/No GitHub account is linked/);
  });

  it("pages through GitHub's Link header with our opaque cursor, retrying a rate-limit answer", async () => {
    gh.rateLimitNext(`${FakeGitHub.API_PREFIX}/user/repos`, 1);
    const before = userRepoCalls().length;
    const started = Date.now();
    const names: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
      const res = await t.json<{ items: { fullName: string; connected: boolean }[]; nextCursor: string | null }>(
        "GET",
        `/api/github/repos?limit=2${q}`,
        { token: alice.token },
      );
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      names.push(...res.body.items.map((i) => i.fullName));
      cursor = res.body.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(names.sort()).toEqual(["octo/api", "octo/docs", "octo/infra", "octo/shop", "octo/site"]);
    // The first call was answered 403 rate-limited (retry-after 1 s), then retried once.
    const calls = userRepoCalls().slice(before);
    expect(calls).toHaveLength(4);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(calls.map((c) => c.query.page)).toEqual(["1", "1", "2", "3"]);
    expect(calls[0]?.query).toMatchObject({ per_page: "2", sort: "updated" });
    expect(calls[0]?.headers).toMatchObject({
      authorization: expect.stringMatching(/^Bearer gho_/),
      accept: "application/vnd.github+json",
      "x-github-api-version": "2022-11-28",
      "user-agent": "hoist",
    });
  });

  it("is a 502 problem when GitHub's rate limit lasts longer than it is worth waiting", async () => {
    gh.rateLimitNext(`${FakeGitHub.API_PREFIX}/user/repos`, 60);
    const res = await t.json<Json>("GET", "/api/github/repos", { token: alice.token });
    expect(res.status).toBe(502);
    expect(res.body.detail).toMatch(/rate limit/);
  });

  it("refuses a foreign cursor (400)", async () => {
    const res = await t.json<Json>("GET", "/api/github/repos?cursor=bogus", { token: alice.token });
    expect(res.status).toBe(400);
  });
});

describe("POST /api/github/repos/connect and DELETE /api/github/repos/:owner/:repo", () => {
  const record = (fullName: string) =>
    t.deps.store.get<RepoHookItem>(repoHookKey(alice.id, fullName), { consistent: true });

  it("creates the webhook once, records it, and points the app at the repository", async () => {
    // One transient 502 from GitHub is retried.
    gh.failNext(`${FakeGitHub.API_PREFIX}/repos/octo/shop/hooks`, 502);
    const body = { fullName: "octo/shop", appId: apps.web, branch: "main" };
    const first = await t.json<Json>("POST", "/api/github/repos/connect", { token: alice.token, body });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body.hook).toMatchObject({ outcome: "created" });
    expect(first.body.app).toMatchObject({
      id: apps.web,
      repository: { fullName: "octo/shop", branch: "main", autoDeploy: true, deployOn: "push" },
    });
    const hooks = gh.hooksOf("octo/shop");
    expect(hooks).toHaveLength(1);
    expect(hooks[0]).toMatchObject({
      name: "web",
      active: true,
      events: ["push", "workflow_run"],
      // The repository's own secret (not the operator's global one), as stored for it, sealed.
      config: { url: HOOK_URL, content_type: "json", secret: expect.any(String), insecure_ssl: "0" },
    });
    const repoId = (await record("octo/shop"))?.repoId ?? 0;
    const repoSecret = await t.deps.store.get<RepoSecretItem>(repoSecretKey(repoId));
    expect(hooks[0]?.config.secret).not.toBe(SECRET);
    expect(await t.deps.keyVault.decrypt(repoSecret?.secret ?? "", repoSecretContext(repoSecret?.repoId ?? 0))).toBe(
      hooks[0]?.config.secret,
    );
    expect(await record("octo/shop")).toMatchObject({ hookId: hooks[0]?.id, appIds: [apps.web] });

    const again = await t.json<Json>("POST", "/api/github/repos/connect", { token: alice.token, body });
    expect(again.status).toBe(200);
    expect(again.body.hook).toMatchObject({ id: hooks[0]?.id, outcome: "reused" });
    expect(gh.hooksOf("octo/shop")).toHaveLength(1);

    // Record lost: GitHub answers 422 "Hook already exists" and the hook is adopted.
    await t.deps.store.delete(repoHookKey(alice.id, "octo/shop"));
    const adopt = await t.json<Json>("POST", "/api/github/repos/connect", { token: alice.token, body });
    expect(adopt.status).toBe(200);
    expect(adopt.body.hook).toMatchObject({ id: hooks[0]?.id, outcome: "adopted" });
    expect(gh.hooksOf("octo/shop")).toHaveLength(1);

    const list = await t.json<{ items: { fullName: string; connected: boolean }[] }>(
      "GET",
      "/api/github/repos?limit=100",
      { token: alice.token },
    );
    expect(list.body.items.find((r) => r.fullName === "octo/shop")?.connected).toBe(true);
    expect(list.body.items.find((r) => r.fullName === "octo/docs")?.connected).toBe(false);
  });

  it("keeps the app's autoDeploy and deployOn when it already had a repository", async () => {
    const body = { fullName: "octo/api", appId: apps.ci, branch: "main" };
    const res = await t.json<Json>("POST", "/api/github/repos/connect", { token: alice.token, body });
    expect(res.status).toBe(200);
    expect(res.body.app).toMatchObject({
      repository: { fullName: "octo/api", branch: "main", autoDeploy: false, deployOn: "ci-success" },
    });
  });

  it("is 404 for another tenant's app and for a repository GitHub does not let you manage", async () => {
    const foreign = await t.json<Json>("POST", "/api/github/repos/connect", {
      token: alice.token,
      body: { fullName: "octo/site", appId: apps.bobweb, branch: "main" },
    });
    expect(foreign.status).toBe(404);
    const missing = await t.json<Json>("POST", "/api/github/repos/connect", {
      token: alice.token,
      body: { fullName: "stranger/secret", appId: apps.web, branch: "main" },
    });
    expect(missing.status).toBe(404);
    expect(missing.body.detail).toMatch(/stranger\/secret/);
    const bad = await t.json<Json>("POST", "/api/github/repos/connect", {
      token: alice.token,
      body: { fullName: "no-slash", appId: apps.web, branch: "main" },
    });
    expect(bad.status).toBe(400);
    const unlinked = await t.json<Json>("POST", "/api/github/repos/connect", {
      token: bob.token,
      body: { fullName: "octo/site", appId: apps.bobweb, branch: "main" },
    });
    expect(unlinked.status).toBe(409);
  });

  it("deletes the webhook on GitHub and forgets the record; a hook already gone is fine", async () => {
    const res = await t.call("DELETE", "/api/github/repos/octo/shop", { token: alice.token });
    expect(res.status).toBe(204);
    expect(gh.hooksOf("octo/shop")).toHaveLength(0);
    expect(await record("octo/shop")).toBeUndefined();
    expect((await t.call("DELETE", "/api/github/repos/octo/shop", { token: alice.token })).status).toBe(404);

    gh.hooks.set("octo/api", []);
    expect((await t.call("DELETE", "/api/github/repos/octo/api", { token: alice.token })).status).toBe(204);
    expect(await record("octo/api")).toBeUndefined();
  });
});
