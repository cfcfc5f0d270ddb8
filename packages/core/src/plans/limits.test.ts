import { randomUUID } from "node:crypto";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { queuedDeployments } from "../deployments/queued.ts";
import { createHttpApp } from "../http/app.ts";
import type { Store } from "../store/store.ts";
import { postDelivery, pushEvent } from "../testing/github-delivery.ts";
import { type TestClient, testClient } from "../testing/http.ts";
import { monthOf, usageKey } from "../usage/entity.ts";
import { type CountsItem, countsKey } from "./entity.ts";

/**
 * The plans' limits (issue: pay-per-use, parts 2 and 3): counts kept in the
 * transaction that creates or deletes (402 over them, exact under races),
 * deploy minutes checked where deployments are queued (a manual deploy is
 * refused, a webhook's is recorded as failed), requests per minute (429),
 * and admins changing a user's plan.
 */
type Json = Record<string, unknown>;
const GLOBAL = "limits-global-secret";
const PLANS = {
  default: "small",
  plans: {
    small: { limits: { servers: 1, apps: 3, deployMinutes: 10 } },
    five: { limits: { servers: 5, apps: 5 } },
    "tiny-rate": { limits: { requestsPerMinute: 3 } },
    big: {},
  },
};

let plansFile: string;
let t: TestClient;
let admin: { token: string; id: string };

beforeAll(async () => {
  plansFile = join(await mkdtemp(join(tmpdir(), "hoist-plans-")), "plans.json");
  await writeFile(plansFile, JSON.stringify(PLANS));
  t = await testClient({ HOIST_PLANS_FILE: plansFile, HOIST_GITHUB_WEBHOOK_SECRET: GLOBAL });
  const a = await t.register("root"); // the first user: the admin
  admin = { token: a.token, id: a.user.id };
});

const server = (token: string, name = "box") =>
  t.json<Json>("POST", "/api/servers", {
    token,
    body: { name, address: "192.0.2.10", sshUser: "deploy", password: "not-used-123" },
  });
const project = async (token: string) =>
  (await t.json<Json>("POST", "/api/projects", { token, body: { name: "shop" } })).body.id as string;
const app = (token: string, projectId: string, serverId: string, name: string, repository: Json | null = null) =>
  t.json<Json>("POST", "/api/apps", {
    token,
    body: { name, projectId, serverId, cdPath: `/srv/${name}`, repository },
  });
const setPlan = (id: string, plan: string, token = admin.token) =>
  t.json<Json>("PATCH", `/api/users/${id}`, { token, body: { plan } });
const counts = (userId: string) => t.deps.store.get<CountsItem>(countsKey(userId), { consistent: true });
/** Books `seconds` of deploy time on the user's usage item this month, as finished deployments do. */
const spendDeploySeconds = (userId: string, seconds: number, store: Store = t.deps.store) =>
  store.update(usageKey(userId, monthOf(Date.now())), { set: { entity: "usage" }, add: { deploySeconds: seconds } });

describe("count limits: servers and apps", () => {
  it("answers 402 naming the limit, the use, what is allowed and the plan", async () => {
    const { token, user } = await t.register("bob");
    const first = await server(token);
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    const second = await server(token, "another");
    expect(second.status).toBe(402);
    expect(second.res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(second.body).toMatchObject({ status: 402, limit: "servers", use: 1, allowed: 1, plan: "small" });
    expect(second.body.detail).toMatch(/small/);

    const projectId = await project(token);
    for (const name of ["a1", "a2", "a3"])
      expect((await app(token, projectId, first.body.id as string, name)).status).toBe(201);
    const fourth = await app(token, projectId, first.body.id as string, "a4");
    expect(fourth.status).toBe(402);
    expect(fourth.body).toMatchObject({ limit: "apps", use: 3, allowed: 3, plan: "small" });
    // Nothing of the refused app was written.
    const list = await t.json<{ items: Json[] }>("GET", "/api/apps", { token });
    expect(list.body.items.map((a) => a.name).sort()).toEqual(["a1", "a2", "a3"]);
    expect(await counts(user.id)).toMatchObject({ servers: 1, apps: 3 });
  });

  it("gives exactly N of N+1 racing creates against a limit of N; a delete frees a slot", async () => {
    const { token, user } = await t.register("carol");
    expect((await setPlan(user.id, "five")).status).toBe(200);
    const tried = await Promise.all(Array.from({ length: 6 }, (_, i) => server(token, `s${i}`)));
    const statuses = tried.map((r) => r.status).sort();
    expect(statuses).toEqual([201, 201, 201, 201, 201, 402]);
    expect(tried.find((r) => r.status === 402)?.body).toMatchObject({ limit: "servers", use: 5, allowed: 5 });
    expect(await counts(user.id)).toMatchObject({ servers: 5 });
    const list = await t.json<{ items: Json[] }>("GET", "/api/servers", { token });
    expect(list.body.items).toHaveLength(5);

    const gone = tried.find((r) => r.status === 201)?.body.id as string;
    expect((await t.call("DELETE", `/api/servers/${gone}`, { token })).status).toBe(200);
    expect(await counts(user.id)).toMatchObject({ servers: 4 });
    // Deleting it again: 404, and counted once.
    expect((await t.call("DELETE", `/api/servers/${gone}`, { token })).status).toBe(404);
    expect(await counts(user.id)).toMatchObject({ servers: 4 });
    expect((await server(token, "again")).status).toBe(201);
    expect((await server(token, "over")).status).toBe(402);
  });

  it("races apps the same way, and a project's force delete gives its apps back", async () => {
    const { token, user } = await t.register("dave");
    expect((await setPlan(user.id, "five")).status).toBe(200);
    const serverId = (await server(token)).body.id as string;
    const projectId = await project(token);
    const tried = await Promise.all(Array.from({ length: 6 }, (_, i) => app(token, projectId, serverId, `r${i}`)));
    expect(tried.filter((r) => r.status === 201)).toHaveLength(5);
    expect(tried.filter((r) => r.status === 402)).toHaveLength(1);
    expect(await counts(user.id)).toMatchObject({ apps: 5 });

    const one = tried.find((r) => r.status === 201)?.body.id as string;
    expect((await t.call("DELETE", `/api/apps/${one}`, { token })).status).toBe(200);
    expect(await counts(user.id)).toMatchObject({ apps: 4 });
    const removed = await t.json<Json>("DELETE", `/api/projects/${projectId}?force=true`, { token });
    expect(removed.status, JSON.stringify(removed.body)).toBe(200);
    expect(removed.body.appsDeleted).toBe(4);
    expect(await counts(user.id)).toMatchObject({ apps: 0 });
  });

  it("backfills the count of a user from before counts were kept, from what they hold", async () => {
    const { token, user } = await t.register("erin");
    expect((await setPlan(user.id, "five")).status).toBe(200);
    for (const name of ["b1", "b2", "b3"]) expect((await server(token, name)).status).toBe(201);
    // As a user who signed up before counts existed: no counts item at all.
    await t.deps.store.delete(countsKey(user.id));
    const racing = await Promise.all([server(token, "b4"), server(token, "b5"), server(token, "b6")]);
    expect(racing.map((r) => r.status).sort()).toEqual([201, 201, 402]);
    expect(racing.find((r) => r.status === 402)?.body).toMatchObject({ use: 5, allowed: 5 });
    expect(await counts(user.id)).toMatchObject({ servers: 5 });

    // A delete before any create backfills too (never starts the count at -1).
    await t.deps.store.delete(countsKey(user.id));
    const list = await t.json<{ items: Json[] }>("GET", "/api/servers", { token });
    expect((await t.call("DELETE", `/api/servers/${list.body.items[0]?.id}`, { token })).status).toBe(200);
    expect(await counts(user.id)).toMatchObject({ servers: 4 });
  });
});

describe("deploy minutes", () => {
  it("refuses a manual deploy over the month's deploy minutes with 402, writing nothing", async () => {
    const { token, user } = await t.register("frank");
    const serverId = (await server(token)).body.id as string;
    const appId = (await app(token, await project(token), serverId, "web")).body.id as string;
    const ok = await t.json<{ deployment: Json }>("POST", `/api/apps/${appId}/deployments`, { token });
    expect(ok.status, JSON.stringify(ok.body)).toBe(202);

    await spendDeploySeconds(user.id, 600); // 10 minutes: all the plan allows
    const over = await t.json<Json>("POST", `/api/apps/${appId}/deployments`, { token });
    expect(over.status).toBe(402);
    expect(over.body).toMatchObject({ limit: "deployMinutes", use: 10, allowed: 10, plan: "small" });
    const redeploy = await t.json<Json>("POST", `/api/deployments/${ok.body.deployment.id}/redeploy`, { token });
    expect(redeploy.status).toBe(402);
    const listed = await t.json<{ items: Json[] }>("GET", `/api/deployments?appId=${appId}`, { token });
    expect(listed.body.items.map((d) => d.id)).toEqual([ok.body.deployment.id]);
    expect((await queuedDeployments(t.deps, appId)).map((q) => q.deploymentId)).toEqual([ok.body.deployment.id]);

    // Another plan without the limit: deploys again.
    expect((await setPlan(user.id, "big")).status).toBe(200);
    expect((await t.json<Json>("POST", `/api/apps/${appId}/deployments`, { token })).status).toBe(202);
  });

  describe("a webhook-triggered deploy", () => {
    const push = (fullName: string) => JSON.stringify(pushEvent({ fullName, id: 777_001 }));
    const deliverPush = (body: string, id = randomUUID(), via = t.app) =>
      postDelivery<Json>(via, { body, secret: GLOBAL, id, ip: "192.0.2.45" });
    const deployment = async (id: string) =>
      (await t.json<Json>("GET", `/api/deployments/${id}`, { token: admin.token })).body;
    let hooked: string;
    let raced: string;

    beforeAll(async () => {
      // The admin binds apps by name under the global secret (no GitHub needed); the admin is on `small` too.
      const serverId = (await server(admin.token)).body.id as string;
      const projectId = await project(admin.token);
      const bind = (fullName: string) => ({ fullName, branch: "main", autoDeploy: true, deployOn: "push" });
      hooked = (await app(admin.token, projectId, serverId, "hooked", bind("octo/quota"))).body.id as string;
      raced = (await app(admin.token, projectId, serverId, "raced", bind("octo/quota-race"))).body.id as string;
    });

    it("under the quota is queued; over it is recorded failed, naming the limit, and still answered 202", async () => {
      const under = await deliverPush(push("octo/quota"));
      expect(under.status, JSON.stringify(under.body)).toBe(202);
      const [queuedId] = under.body.deployments as string[];
      expect((await deployment(queuedId as string)).status).toBe("queued");

      await spendDeploySeconds(admin.id, 900);
      const deliveryId = randomUUID();
      const body = push("octo/quota");
      const over = await deliverPush(body, deliveryId);
      expect(over.status).toBe(202);
      expect(over.body).toMatchObject({ status: "accepted", deployments: [expect.any(String)] });
      const [failedId] = over.body.deployments as string[];
      const failed = await deployment(failedId as string);
      expect(failed).toMatchObject({ status: "failed", trigger: "push" });
      expect(failed.error).toMatch(/deployMinutes/);
      expect(failed.error).toMatch(/"small"/);
      // Not queued: no marker (and so no worker run) besides the earlier one.
      expect((await queuedDeployments(t.deps, hooked)).map((q) => q.deploymentId)).toEqual([queuedId]);

      // Redelivered: the same answer, nothing written twice.
      const again = await deliverPush(body, deliveryId);
      expect(again.body).toMatchObject({ status: "duplicate", deployments: [failedId] });
      const listed = await t.json<{ items: Json[] }>("GET", `/api/deployments?appId=${hooked}`, {
        token: admin.token,
      });
      expect(listed.body.items).toHaveLength(2);
    });

    it("over the quota between the read and the transaction: the check fails it, and it is recorded failed", async () => {
      await t.deps.store.delete(usageKey(admin.id, monthOf(Date.now())));
      // The deploy minutes run out right after the webhook read its owners' usage (under the quota then).
      let armed = true;
      const store = new Proxy(t.deps.store, {
        get(target, prop, receiver) {
          const value = Reflect.get(target, prop, receiver);
          if (prop !== "batchGet" || typeof value !== "function") return value;
          return async (...args: unknown[]) => {
            const out = await value.apply(target, args);
            const keys = args[0] as { pk: string }[];
            if (armed && keys.some((k) => k.pk.startsWith("USAGE#"))) {
              armed = false;
              await spendDeploySeconds(admin.id, 600, target);
            }
            return out;
          };
        },
      });
      const via = createHttpApp({ ...t.deps, store });
      const res = await deliverPush(push("octo/quota-race"), randomUUID(), via);
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      expect(armed).toBe(false);
      const [id] = res.body.deployments as string[];
      const dep = await deployment(id as string);
      expect(dep.status).toBe("failed");
      expect(dep.error).toMatch(/deployMinutes.*10 deploy minutes a month, 10 used/);
      expect(await queuedDeployments(t.deps, raced)).toEqual([]);
    });
  });
});

describe("requests per minute", () => {
  it("is the plan's per-user window (429 with Retry-After), for access and API tokens alike", async () => {
    const rated = await testClient({ HOIST_PLANS_FILE: plansFile, HOIST_RATE_LIMIT_API: "100" });
    const root = await rated.register("rated-root");
    const { token, user } = await rated.register("gina");
    const patched = await rated.json<Json>("PATCH", `/api/users/${user.id}`, {
      token: root.token,
      body: { plan: "tiny-rate" },
    });
    expect(patched.status).toBe(200);
    // Not across a window's end: the counts below must fall in one minute.
    const left = 60 - (Math.floor(Date.now() / 1000) % 60);
    if (left < 5) await new Promise((r) => setTimeout(r, left * 1000 + 100));
    const minted = await rated.json<{ token: string }>("POST", "/api/tokens", {
      token,
      body: { name: "rate", scopes: ["read"] },
    });
    expect(minted.status).toBe(201);
    expect((await rated.call("GET", "/api/auth/verify", { token })).status).toBe(200);
    const third = await rated.call("GET", "/api/auth/verify", { token: minted.body.token });
    expect(third.status).toBe(200);
    expect(third.headers.get("RateLimit-Limit")).toBe("3");
    const fourth = await rated.call("GET", "/api/auth/verify", { token });
    expect(fourth.status).toBe(429);
    expect(Number(fourth.headers.get("Retry-After"))).toBeGreaterThan(0);
    expect((await rated.call("GET", "/api/auth/verify", { token: minted.body.token })).status).toBe(429);
    // A user on a plan without the limit: HOIST_RATE_LIMIT_API.
    const rootVerify = await rated.call("GET", "/api/auth/verify", { token: root.token });
    expect(rootVerify.headers.get("RateLimit-Limit")).toBe("100");
  });

  it("is off with HOIST_RATE_LIMIT_API=0, whatever the plan", async () => {
    const { token, user } = await t.register("hank");
    expect((await setPlan(user.id, "tiny-rate")).status).toBe(200);
    for (let i = 0; i < 6; i++) expect((await t.call("GET", "/api/auth/verify", { token })).status).toBe(200);
  });
});

describe("PATCH /api/users/:id {plan}", () => {
  it("an admin changes a user's plan, audited; the new limits apply at once", async () => {
    const { token, user } = await t.register("ivy");
    expect((await server(token)).status).toBe(201);
    expect((await server(token, "second")).status).toBe(402);
    const res = await setPlan(user.id, "five");
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: user.id, plan: "five" });
    expect((await server(token, "second")).status).toBe(201);
    const audit = await t.json<{ items: Json[] }>(
      "GET",
      `/api/audit-logs?resourceType=user&resourceId=${user.id}&action=user.plan_changed`,
      { token: admin.token },
    );
    expect(audit.body.items).toEqual([
      expect.objectContaining({
        userId: admin.id,
        action: "user.plan_changed",
        resourceType: "user",
        resourceId: user.id,
        details: { from: "small", to: "five" },
      }),
    ]);
  });

  it("is refused to a member (403), and an unknown plan is a 400 naming the configured ones", async () => {
    const { token, user } = await t.register("jack");
    const self = await setPlan(user.id, "big", token);
    expect(self.status).toBe(403);
    const unknown = await setPlan(user.id, "gold");
    expect(unknown.status).toBe(400);
    expect(unknown.body.detail).toMatch(/small, five, tiny-rate, big/);
    expect(unknown.body.errors).toEqual([expect.objectContaining({ path: "body.plan" })]);
    expect((await t.json<Json>("GET", `/api/users/${user.id}`, { token: admin.token })).body.plan).toBe("small");
  });
});
