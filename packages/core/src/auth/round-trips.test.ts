import { beforeAll, describe, expect, it } from "vitest";
import { createHttpApp } from "../http/app.ts";
import type { Deps } from "../ports.ts";
import { channelPk } from "../realtime/publish.ts";
import { type TestClient, testClient } from "../testing/http.ts";
import { countingStore } from "../testing/round-trips.ts";
import { UsageMeter } from "../usage/meter.ts";

/**
 * Whether an admin follows the request log (`logs:all`, app.ts) is looked up
 * at most once a second per app, not per request: the first request of an app
 * pays it, and a test that takes over a second between requests would see it again.
 */
const LISTENER_CHECK = `query ${channelPk("logs:all")}`;
const perRequest = (calls: string[]) => calls.filter((c) => c !== LISTENER_CHECK);

let t: TestClient;
let token: string;
/** An API token (`hst_…`) of the same user. */
let apiToken: string;
beforeAll(async () => {
  // The API limits on (high enough never to refuse): both rate windows are counted.
  t = await testClient({ HOIST_RATE_LIMIT_API: "100000" });
  ({ token } = await t.register("tripper"));
  const minted = await t.json<{ token: string }>("POST", "/api/tokens", {
    token,
    body: { name: "trips", scopes: ["read"] },
  });
  apiToken = minted.body.token;
});

/** One app over the counting store, with its own meter on it; the same table and keys as `t`. */
function countedApp(config: Deps["config"] = t.deps.config) {
  const { store, calls, waves } = countingStore(t.deps.store);
  const usage = new UsageMeter({ store, logger: t.deps.logger });
  const app = createHttpApp({ ...t.deps, config, store, usage });
  const verify = (bearer = token) =>
    app.request(
      "/api/auth/verify",
      { headers: { authorization: `Bearer ${bearer}` } },
      { incoming: { socket: { remoteAddress: "127.0.0.1" } } },
    );
  return { calls, usage, verify, waves };
}

describe("an authenticated request's DynamoDB round trips", () => {
  it("are two awaited in a row: blocklist + user in one BatchGetItem alongside the IP window, then the user window", async () => {
    const { calls, usage, verify, waves } = countedApp();
    expect((await verify()).status).toBe(200);
    expect(calls).toContain(LISTENER_CHECK);
    calls.length = 0;
    waves();
    expect((await verify()).status).toBe(200);
    // Three calls, but the token's BatchGetItem runs alongside the per-IP window (app.ts): two awaited in a row.
    expect(perRequest(calls)).toEqual(["update RATE#api-ip", "batchGet JTI,USER", "update RATE#api-user"]);
    expect(waves()).toBe(2);

    // The usage counter is not written on the request's path: the meter writes it later, one
    // UpdateItem for however many requests.
    calls.length = 0;
    for (let i = 0; i < 5; i++) expect((await verify()).status).toBe(200);
    expect(perRequest(calls)).not.toContain("update USAGE");
    calls.length = 0;
    await usage.flush();
    expect(calls).toEqual(["update USAGE"]);
  });

  it("are one BatchGetItem with the API rate limit off", async () => {
    const { calls, verify, waves } = countedApp({
      ...t.deps.config,
      rateLimit: { ...t.deps.config.rateLimit, api: 0 },
    });
    expect((await verify()).status).toBe(200);
    calls.length = 0;
    waves();
    expect((await verify()).status).toBe(200);
    expect(perRequest(calls)).toEqual(["batchGet JTI,USER"]);
    expect(waves()).toBe(1);
  });

  it("are two awaited in a row for an API token: its item by hash alongside the IP window, then its user and the user window", async () => {
    const { calls, usage, verify, waves } = countedApp();
    expect((await verify(apiToken)).status).toBe(200);
    calls.length = 0;
    waves();
    expect((await verify(apiToken)).status).toBe(200);
    // The token item names its user: the user and the user's rate window are read together.
    expect(perRequest(calls)).toEqual(["get APITOKEN", "update RATE#api-ip", "get USER", "update RATE#api-user"]);
    expect(waves()).toBe(2);
    // lastUsedAt is not written on the request's path either: the meter writes it (once a minute at most).
    expect(usage.pendingStamps()).toBe(1);
    calls.length = 0;
    await usage.flush();
    expect(calls.filter((c) => c.startsWith("update APITOKEN"))).toEqual(["update APITOKEN"]);
  });

  it("are two for an API token with the API rate limit off", async () => {
    const { calls, verify, waves } = countedApp({
      ...t.deps.config,
      rateLimit: { ...t.deps.config.rateLimit, api: 0 },
    });
    expect((await verify(apiToken)).status).toBe(200);
    calls.length = 0;
    waves();
    expect((await verify(apiToken)).status).toBe(200);
    expect(perRequest(calls)).toEqual(["get APITOKEN", "get USER"]);
    expect(waves()).toBe(2);
  });
});
