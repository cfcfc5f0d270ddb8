import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { loadConfig } from "@hoist/core/config";
import { createLogger } from "@hoist/core/logger";
import { DynamoStore } from "@hoist/core/store/dynamo-store";
import type { Store } from "@hoist/core/store/store";
import { UNLIMITED_PLANS_FILE } from "@hoist/core/testing/plans";
import { monthOf, type UsageItem, usageKey } from "@hoist/core/usage/entity";
import { afterAll, describe, expect, inject, it } from "vitest";
import { type Runtime, startRuntime } from "./runtime.ts";

const REQUESTS = 40;
let runtime: Runtime | undefined;
afterAll(async () => runtime?.stop());

/** The embedded runtime on the test run's DynamoDB Local, so the table outlives the runtime's stop. */
describe("the embedded runtime's usage meter", () => {
  it("writes every counted request by the time stop() returns, in-flight and pending writes alike", async () => {
    const tableName = `usage_${Date.now().toString(36)}`;
    runtime = await startRuntime(
      loadConfig({
        PORT: "0",
        HOIST_DATA_DIR: await mkdtemp(join(tmpdir(), "hoist-usage-")),
        HOIST_DYNAMODB_ENDPOINT: inject("dynamoEndpoint"),
        HOIST_TABLE_NAME: tableName,
        HOIST_STATUS_SWEEP_SECONDS: "0",
        HOIST_PLANS_FILE: UNLIMITED_PLANS_FILE,
        HOIST_LOG_LEVEL: "silent",
      }),
      createLogger("silent"),
    );
    const res = await fetch(`${runtime.url}/api/auth/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "meter", email: "meter@example.com", password: "correct horse battery staple" }),
    });
    expect(res.status).toBe(201);
    const { token, user } = (await res.json()) as { token: string; user: { id: string } };
    const key = usageKey(user.id, monthOf(Date.now()));

    // Hold every usage write (the meter shares the runtime's store) until stop() is called: whatever
    // the one-second interval started meanwhile is still in flight, the rest pending.
    const store = runtime.deps.store;
    const update = store.update.bind(store);
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    store.update = (async (k, spec) => {
      if (k.pk === key.pk) await held;
      return update(k, spec);
    }) as Store["update"];

    for (let i = 0; i < REQUESTS; i++) {
      const r = await fetch(`${runtime.url}/api/auth/verify`, { headers: { authorization: `Bearer ${token}` } });
      expect(r.status).toBe(200);
    }
    expect((await store.get<UsageItem>(key))?.requests).toBeUndefined();

    // stop() closes the meter (a final flush) and waits for it: the interval alone might write in time, or not.
    const meter = runtime.deps.usage;
    const close = meter.close.bind(meter);
    let closed = false;
    meter.close = async () => {
      await close();
      closed = true;
    };
    const stopping = runtime.stop();
    runtime = undefined;
    release();
    await stopping;
    expect(closed).toBe(true);
    expect(meter.pendingCount()).toBe(0);

    const client = new DynamoDBClient({
      endpoint: inject("dynamoEndpoint"),
      region: "local",
      credentials: { accessKeyId: "hoist", secretAccessKey: "local" },
    });
    const after = await new DynamoStore(client, tableName).get<UsageItem>(key);
    expect(after?.requests).toBe(REQUESTS);
  });
});
