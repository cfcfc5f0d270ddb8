import { beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../http/app.ts";
import type { Deps } from "../ports.ts";
import { channelPk } from "../realtime/publish.ts";
import type { Key, QuerySpec, Store } from "../store/store.ts";
import { type TestClient, testClient } from "../testing/http.ts";
import { UsageMeter } from "../usage/meter.ts";

/**
 * The Store, with every call recorded as `method` + the kind of each key (the
 * key's first `#` part; rate windows with their scope; a query with its
 * partition), so a test reads which DynamoDB round trips one request awaited.
 */
function countingStore(store: Store): { store: Store; calls: string[]; waves: () => number } {
  const calls: string[] = [];
  // A wave is a run of calls that overlap in time: calls awaited one after another make one wave each.
  // Each call is held 20 ms first, so calls started together surely overlap.
  let inFlight = 0;
  let waves = 0;
  const kind = (k: Key) =>
    k.pk
      .split("#")
      .slice(0, k.pk.startsWith("RATE#") ? 2 : 1)
      .join("#");
  const label = (method: string, args: unknown[]) => {
    if (method === "query") return `query ${(args[0] as QuerySpec).pk}`;
    const keys = method === "batchGet" ? (args[0] as Key[]) : [args[0] as Key];
    return `${method} ${keys.map(kind).join(",")}`;
  };
  const counted = new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      return async (...args: unknown[]) => {
        calls.push(label(String(prop), args));
        if (inFlight++ === 0) waves++;
        try {
          await new Promise((r) => setTimeout(r, 20));
          return await value.apply(target, args);
        } finally {
          inFlight--;
        }
      };
    },
  });
  return {
    store: counted,
    calls,
    waves: () => {
      const n = waves;
      waves = 0;
      return n;
    },
  };
}

/**
 * Whether an admin follows the request log (`logs:all`, app.ts) is looked up
 * at most once a second per app, not per request: the first request of an app
 * pays it, and a test that takes over a second between requests would see it again.
 */
const LISTENER_CHECK = `query ${channelPk("logs:all")}`;
const perRequest = (calls: string[]) => calls.filter((c) => c !== LISTENER_CHECK);

let t: TestClient;
let token: string;
beforeAll(async () => {
  // The API limits on (high enough never to refuse): both rate windows are counted.
  t = await testClient({ HOIST_RATE_LIMIT_API: "100000" });
  ({ token } = await t.register("tripper"));
});

/** One app over the counting store, with its own meter on it; the same table and keys as `t`. */
function countedApp(config: Deps["config"] = t.deps.config) {
  const { store, calls, waves } = countingStore(t.deps.store);
  const usage = new UsageMeter({ store, logger: t.deps.logger });
  const app = createApp({ ...t.deps, config, store, usage });
  const verify = () =>
    app.request(
      "/api/auth/verify",
      { headers: { authorization: `Bearer ${token}` } },
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
});
