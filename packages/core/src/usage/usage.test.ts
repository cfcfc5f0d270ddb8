import { beforeAll, describe, expect, it } from "vitest";
import { type TestClient, testClient } from "../testing/http.ts";
import { monthOf, type UsageItem, usageKey } from "./entity.ts";

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
