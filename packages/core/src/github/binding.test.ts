import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeGitHub, type FakeGitHubUser, type FakeRepo } from "../testing/fake-github.ts";
import { postDelivery, pushEvent, signDelivery } from "../testing/github-delivery.ts";
import { linkGitHub, makeApps } from "../testing/github-setup.ts";
import { type TestClient, testClient } from "../testing/http.ts";

/**
 * Repositories are bound by proof, not by name: two tenants, one repository.
 * No global webhook secret here: every delivery must carry the secret of the
 * repository it names (or of the app's own hook).
 */
type Json = Record<string, unknown>;
type User = { token: string; id: string };
let gh: FakeGitHub;
let t: TestClient;
let octo: FakeGitHubUser;
let shop: FakeRepo;
let alice: User;
let bob: User;
let apps: Record<string, string>;
let bobApps: Record<string, string>;

beforeAll(async () => {
  gh = await FakeGitHub.start();
  t = await testClient({ ...gh.env(), HOIST_PUBLIC_URL: "https://hoist.example.com" });
  octo = gh.addUser({ login: "octo" });
  shop = gh.addRepo(octo, "shop");
  gh.addRepo(octo, "docs");
  const mallory = gh.addUser({ login: "mallory" });
  const a = await t.register("alice");
  const b = await t.register("bob");
  alice = { token: a.token, id: a.user.id };
  bob = { token: b.token, id: b.user.id };
  await linkGitHub(t, alice.id, gh, octo);
  await linkGitHub(t, bob.id, gh, mallory);
  apps = await makeApps(t, alice, [
    ["web", null],
    ["docs", null],
  ]);
  bobApps = await makeApps(t, bob, [["spy", null]]);
  for (const [fullName, appId] of [
    ["octo/shop", apps.web],
    ["octo/docs", apps.docs],
  ]) {
    const res = await t.json<Json>("POST", "/api/github/repos/connect", {
      token: alice.token,
      body: { fullName, appId, branch: "main" },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  }
});
afterAll(() => gh.stop());

const hookSecret = (fullName: string) => gh.hooksOf(fullName)[0]?.config.secret as string;
const push = (fullName: string, id: number, sha?: string) => JSON.stringify(pushEvent({ fullName, id }, { sha }));
const deliver = (body: string, signature: string, path?: string) =>
  postDelivery<Json>(t.app, { body, signature, path });
const sign = signDelivery;
const deploymentsOf = async (user: User, appId: string) =>
  (await t.json<{ items: Json[] }>("GET", `/api/deployments?appId=${appId}`, { token: user.token })).body.items;

describe("repositories bound by proof", () => {
  it("binds a connected repository by GitHub's id, with a secret of its own on the hook", async () => {
    const web = await t.json<{ repository: Json }>("GET", `/api/apps/${apps.web}`, { token: alice.token });
    expect(web.body.repository).toMatchObject({ fullName: "octo/shop", id: shop.id });
    expect(hookSecret("octo/shop")).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    expect(hookSecret("octo/shop")).not.toBe(hookSecret("octo/docs"));
  });

  it("refuses another tenant the repository: no binding by name, no connect without access on GitHub", async () => {
    const bind = await t.json<{ errors: { path: string }[] }>("PUT", `/api/apps/${bobApps.spy}`, {
      token: bob.token,
      body: { repository: { fullName: "octo/shop", branch: "main", autoDeploy: true, deployOn: "push" } },
    });
    expect(bind.status).toBe(400);
    expect(bind.body.errors[0]?.path).toBe("body.repository.fullName");
    const connect = await t.json("POST", "/api/github/repos/connect", {
      token: bob.token,
      body: { fullName: "octo/shop", appId: bobApps.spy, branch: "main" },
    });
    expect(connect.status).toBe(404);
    const created = await t.json("POST", "/api/apps", {
      token: bob.token,
      body: {
        name: "spy2",
        projectId: (await t.json<Json[]>("GET", "/api/projects?format=array", { token: bob.token })).body[0]?.id,
        serverId: (await t.json<Json[]>("GET", "/api/servers?format=array", { token: bob.token })).body[0]?.id,
        cdPath: "/srv/spy2",
        repository: { fullName: "octo/shop", branch: "main" },
      },
    });
    expect(created.status).toBe(400);
  });

  it("deploys a push signed with the repository's secret to the apps bound to its id, even after a rename", async () => {
    const before = (await deploymentsOf(alice, apps.web as string)).length;
    const body = push("octo/shop", shop.id);
    const ok = await deliver(body, sign(body, hookSecret("octo/shop")));
    expect(ok.status).toBe(202);
    expect(ok.body.deployments).toHaveLength(1);
    // Renamed on GitHub: the id still names it, and its secret still signs it.
    const renamed = push("octo/storefront", shop.id);
    const again = await deliver(renamed, sign(renamed, hookSecret("octo/shop")));
    expect(again.body.deployments).toHaveLength(1);
    expect((await deploymentsOf(alice, apps.web as string)).length).toBeGreaterThanOrEqual(before + 2);
    expect(await deploymentsOf(bob, bobApps.spy as string)).toEqual([]);
  });

  it("refuses a delivery signed with another repository's secret, or with none it knows", async () => {
    const body = push("octo/shop", shop.id);
    expect((await deliver(body, sign(body, hookSecret("octo/docs")))).status).toBe(401);
    expect((await deliver(body, sign(body, "a-guess"))).status).toBe(401);
    const unknown = push("octo/elsewhere", 424242);
    expect((await deliver(unknown, sign(unknown, hookSecret("octo/shop")))).status).toBe(401);
  });

  it("gives an app its own hook: only its URL and its (rotatable) secret reach it", async () => {
    const first = await t.json<{ url: string; secret: string }>("POST", `/api/apps/${bobApps.spy}/webhook`, {
      token: bob.token,
    });
    expect(first.status).toBe(200);
    expect(first.body.url).toBe(`https://hoist.example.com/api/webhooks/github/apps/${bobApps.spy}`);
    // With its own hook, the app may name a repository it did not connect: only that hook reaches it.
    const bind = await t.json("PUT", `/api/apps/${bobApps.spy}`, {
      token: bob.token,
      body: { repository: { fullName: "bob/tool", branch: "main", autoDeploy: true, deployOn: "push" } },
    });
    expect(bind.status, JSON.stringify(bind.body)).toBe(200);
    const path = new URL(first.body.url).pathname;
    const body = push("bob/tool", 777);
    const ok = await deliver(body, sign(body, first.body.secret), path);
    expect(ok.status).toBe(202);
    expect(ok.body.deployments).toHaveLength(1);
    // The shared URL knows no secret for bob/tool; another repository's secret does not open the app's URL.
    expect((await deliver(body, sign(body, first.body.secret))).status).toBe(401);
    expect((await deliver(body, sign(body, hookSecret("octo/shop")), path)).status).toBe(401);
    // Rotating: the old secret stops working at once.
    const second = await t.json<{ secret: string }>("POST", `/api/apps/${bobApps.spy}/webhook`, { token: bob.token });
    expect(second.body.secret).not.toBe(first.body.secret);
    expect((await deliver(body, sign(body, first.body.secret), path)).status).toBe(401);
    const fresh = push("bob/tool", 777);
    expect((await deliver(fresh, sign(fresh, second.body.secret), path)).status).toBe(202);
  });
});
