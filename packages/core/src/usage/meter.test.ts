import { beforeAll, describe, expect, it } from "vitest";
import type { Logger } from "../logger.ts";
import type { DynamoStore } from "../store/dynamo-store.ts";
import type { Key, Store, UpdateSpec } from "../store/store.ts";
import { testTable } from "../testing/dynamo.ts";
import { monthOf, type UsageItem, usageKey } from "./entity.ts";
import { UsageMeter } from "./meter.ts";

let store: DynamoStore;
beforeAll(async () => {
  ({ store } = await testTable("meter"));
});

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {} };
const JAN = Date.UTC(2026, 0, 15);
const FEB = Date.UTC(2026, 1, 15);
const requests = async (userId: string, at = JAN) =>
  (await store.get<UsageItem>(usageKey(userId, monthOf(at))))?.requests ?? 0;

/** The table's `update`, with every usage write recorded and the first `failures` refused. */
function flakyStore(failures = 0) {
  const writes: { pk: string; requests: number | undefined }[] = [];
  let left = failures;
  const wrapped: Pick<Store, "update"> = {
    update: ((key: Key, spec: UpdateSpec) => {
      if (left-- > 0)
        return Promise.reject(Object.assign(new Error("Injected fault"), { name: "InternalServerError" }));
      writes.push({ pk: key.pk, requests: spec.add?.requests });
      return store.update(key, spec);
    }) as Store["update"],
  };
  return { store: wrapped, writes };
}

describe("UsageMeter", () => {
  it("writes each user's month in one UpdateItem, whatever the number of requests", async () => {
    const { store: s, writes } = flakyStore();
    const meter = new UsageMeter({ store: s, logger: silent });
    for (let i = 0; i < 50; i++) meter.count("usr_a", 1, JAN);
    meter.count("usr_a", 5, FEB);
    meter.count("usr_b", 2, JAN);
    expect(meter.pendingCount()).toBe(57);
    await meter.flush();
    expect(writes).toHaveLength(3);
    expect([await requests("usr_a"), await requests("usr_a", FEB), await requests("usr_b")]).toEqual([50, 5, 2]);
    expect(meter.pendingCount()).toBe(0);
    await meter.flush();
    expect(writes).toHaveLength(3);
  });

  it("flushes one user's counts and leaves the others pending", async () => {
    const meter = new UsageMeter({ store, logger: silent });
    meter.count("usr_c", 3, JAN);
    meter.count("usr_d", 4, JAN);
    await meter.flush("usr_c");
    expect([await requests("usr_c"), await requests("usr_d")]).toEqual([3, 0]);
    expect(meter.pendingCount("usr_d")).toBe(4);
  });

  it("keeps the counts of a failed flush, never throws, and writes them with the next one", async () => {
    const warnings: string[] = [];
    const { store: s } = flakyStore(1);
    const meter = new UsageMeter({ store: s, logger: { ...silent, warn: (msg) => warnings.push(msg) } });
    meter.count("usr_e", 7, JAN);
    await expect(meter.flush()).resolves.toBeUndefined();
    expect(warnings).toEqual(["usage flush failed; kept for the next one"]);
    expect(meter.pendingCount("usr_e")).toBe(7);
    // Counted meanwhile: added to what is kept.
    meter.count("usr_e", 1, JAN);
    await meter.flush();
    expect(await requests("usr_e")).toBe(8);
    expect(meter.pendingCount()).toBe(0);
  });

  it("has written everything counted before a flush was called once it returns, flushes overlapping", async () => {
    const meter = new UsageMeter({ store, logger: silent });
    meter.count("usr_f", 1, JAN);
    const first = meter.flush();
    meter.count("usr_f", 1, JAN);
    // Called while the first is under way: it waits for it, then writes what came since.
    await meter.flush("usr_f");
    expect(await requests("usr_f")).toBe(2);
    await first;
  });

  it("starts writing when counted with flushOnCount, and a flush waits for that write", async () => {
    const { store: s, writes } = flakyStore();
    const meter = new UsageMeter({ store: s, logger: silent, flushOnCount: true });
    meter.count("usr_j", 1, JAN);
    await new Promise((r) => setImmediate(r));
    // Under way before anyone asked for a flush.
    expect(writes).toEqual([{ pk: usageKey("usr_j", monthOf(JAN)).pk, requests: 1 }]);
    expect(meter.pendingCount()).toBe(0);
    await meter.flush();
    expect(writes).toHaveLength(1);
    expect(await requests("usr_j")).toBe(1);
  });

  it("flushes on its interval", async () => {
    const meter = new UsageMeter({ store, logger: silent, flushIntervalMs: 20 });
    meter.count("usr_g", 2, JAN);
    await expect.poll(() => requests("usr_g"), { timeout: 2000 }).toBe(2);
    await meter.close();
  });

  it("retries on close until the store answers, and says what it could not write", async () => {
    const { store: s } = flakyStore(2);
    const meter = new UsageMeter({ store: s, logger: silent, flushIntervalMs: 60_000 });
    meter.count("usr_h", 9, JAN);
    await meter.close();
    expect(await requests("usr_h")).toBe(9);

    const errors: { msg: string; fields?: Record<string, unknown> }[] = [];
    const down = flakyStore(Number.POSITIVE_INFINITY);
    const doomed = new UsageMeter({
      store: down.store,
      logger: { ...silent, error: (msg, fields) => errors.push({ msg, fields }) },
    });
    doomed.count("usr_i", 4, JAN);
    await doomed.close();
    expect(errors).toEqual([{ msg: "usage counts lost on shutdown", fields: { requests: 4 } }]);
  });

  it("stamps a time on an item in the background: the latest, only on an item that exists, at most once per gap", async () => {
    const key = { pk: "STAMP#one", sk: "STAMP" };
    await store.put({ ...key, entity: "test" });
    const { store: s, writes } = flakyStore(1);
    const meter = new UsageMeter({ store: s, logger: silent });
    meter.stamp(key, "lastUsedAt", 1_000, 60_000);
    meter.stamp(key, "lastUsedAt", 2_000, 60_000);
    meter.stamp({ pk: "STAMP#gone", sk: "STAMP" }, "lastUsedAt", 2_000, 60_000);
    expect(meter.pendingStamps()).toBe(2);
    await meter.flush(); // the first write is refused: kept
    expect(meter.pendingStamps()).toBe(1);
    await meter.flush();
    expect(meter.pendingStamps()).toBe(0);
    expect((await store.get(key))?.lastUsedAt).toBe(2_000);
    expect(await store.get({ pk: "STAMP#gone", sk: "STAMP" })).toBeUndefined(); // never created
    // Within the gap: not written again.
    meter.stamp(key, "lastUsedAt", 30_000, 60_000);
    await meter.flush();
    expect((await store.get(key))?.lastUsedAt).toBe(2_000);
    meter.stamp(key, "lastUsedAt", 62_000, 60_000);
    await meter.close();
    expect((await store.get(key))?.lastUsedAt).toBe(62_000);
    expect(writes.length).toBe(4); // the refused one is not recorded
  });
});
