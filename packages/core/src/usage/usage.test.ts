import { beforeAll, describe, expect, it } from "vitest";
import { type TestClient, testClient } from "../testing/http.ts";
import { userKeys } from "../users/entity.ts";
import { monthOf, type UsageItem, usageAttrs, usageKey } from "./entity.ts";

let t: TestClient;
beforeAll(async () => {
  t = await testClient();
});

const stored = async (userId: string) =>
  (await t.deps.store.get<UsageItem>(usageKey(userId, monthOf(Date.now()))))?.requests ?? 0;

describe("GET /api/usage requests", () => {
  it("counts 200 concurrent authenticated requests exactly, written in the background", async () => {
    const { token, user } = await t.register("counter");
    const statuses = await Promise.all(
      Array.from({ length: 200 }, () => t.call("GET", "/api/auth/verify", { token }).then((r) => r.status)),
    );
    expect(statuses.every((s) => s === 200)).toBe(true);
    // Answered without writing the counter: the counts wait in the meter.
    expect(t.deps.usage.pendingCount(user.id)).toBe(200);
    await t.deps.usage.flush();
    expect(await stored(user.id)).toBe(200);
  });

  it("writes the caller's pending requests before answering, this one included", async () => {
    const { token, user } = await t.register("reader");
    for (let i = 0; i < 5; i++) expect((await t.call("GET", "/api/auth/me", { token })).status).toBe(200);
    const usage = await t.json<{ requests: number }>("GET", "/api/usage", { token });
    expect(usage).toMatchObject({ status: 200, body: { requests: 6 } });
    expect(await stored(user.id)).toBe(6);
    expect(t.deps.usage.pendingCount(user.id)).toBe(0);
  });

  it("does not count refused tokens", async () => {
    const { token, user } = await t.register("refused");
    const logout = await t.call("POST", "/api/auth/logout", { token });
    expect(logout.status).toBe(200);
    expect((await t.call("GET", "/api/auth/me", { token })).status).toBe(401);
    await t.deps.usage.flush();
    expect(await stored(user.id)).toBe(1);
  });
});

describe("GET /api/usage: who may read whose", () => {
  it("lets a member read only their own use (403 for another's); an admin reads anyone's and everyone's", async () => {
    const admin = await t.register("usage-admin"); // not the first user of the table: made admin below
    await t.deps.store.update(userKeys.user(admin.user.id), { set: { role: "admin" } });
    const member = await t.register("usage-member");
    const other = await t.register("usage-other");
    await t.deps.store.update(usageKey(other.user.id, "2030-05"), {
      set: usageAttrs(other.user.id, "2030-05"),
      add: { deployments: 3 },
    });
    for (const path of ["/api/usage", "/api/usage/statement"]) {
      const refused = await t.json("GET", `${path}?month=2030-05&userId=${other.user.id}`, { token: member.token });
      expect(refused.status).toBe(403);
      const own = await t.json("GET", `${path}?month=2030-05&userId=${member.user.id}`, { token: member.token });
      expect(own.status).toBe(200);
    }
    const read = await t.json<{ deployments: number; userId: string }>(
      "GET",
      `/api/usage?month=2030-05&userId=${other.user.id}`,
      { token: admin.token },
    );
    expect(read.body).toMatchObject({ userId: other.user.id, deployments: 3 });
    expect((await t.json("GET", "/api/usage/users?month=2030-05", { token: member.token })).status).toBe(403);
    const all = await t.json<{ items: { userId: string; deployments: number }[] }>(
      "GET",
      "/api/usage/users?month=2030-05",
      { token: admin.token },
    );
    expect(all.body.items).toEqual([expect.objectContaining({ userId: other.user.id, deployments: 3 })]);
  });
});

describe("GET /api/usage/statement", () => {
  it("equals the counters × the plan's prices, in whole cents, as JSON and as CSV", async () => {
    const { token, user } = await t.register("statement");
    const counters = { requests: 1234, deployments: 7, deploySeconds: 301, appRunningMinutes: 95 };
    await t.deps.store.update(usageKey(user.id, "2030-03"), { set: usageAttrs(user.id, "2030-03"), add: counters });
    const plan = t.deps.config.plans.get(undefined);
    const { status, body } = await t.json<{
      plan: string;
      lines: { item: keyof typeof counters; quantity: number; unitCents: number; amountCents: number }[];
      totalCents: number;
    }>("GET", "/api/usage/statement?month=2030-03", { token });
    expect(status).toBe(200);
    expect(body.plan).toBe(plan.name);
    const expected = (Object.keys(counters) as (keyof typeof counters)[]).map((item) => ({
      item,
      quantity: counters[item],
      unitCents: plan.prices[item] ?? 0,
      amountCents: Math.round(Number((counters[item] * (plan.prices[item] ?? 0)).toFixed(6))),
    }));
    expect(body.lines).toEqual(expected);
    expect(body.totalCents).toBe(expected.reduce((s, l) => s + l.amountCents, 0));
    for (const l of body.lines) expect(Number.isInteger(l.amountCents)).toBe(true);
    // The default free plan: 12.34 → 12, 7, 15.05 → 15, 47.5 → 48.
    expect(body.totalCents).toBe(82);

    const csv = await t.call("GET", "/api/usage/statement?month=2030-03", { token, headers: { accept: "text/csv" } });
    expect(csv.headers.get("content-type")).toMatch(/^text\/csv/);
    const rows = (await csv.text()).trim().split("\r\n");
    expect(rows[0]).toBe("item,quantity,unitCents,amountCents");
    expect(rows.slice(1)).toEqual(expected.map((l) => `${l.item},${l.quantity},${l.unitCents},${l.amountCents}`));
  });
});
