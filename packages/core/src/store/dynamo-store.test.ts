import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { ConditionFailedError, ValidationError } from "../errors.ts";
import { testTable } from "../testing/dynamo.ts";
import { DynamoStore } from "./dynamo-store.ts";
import { cond } from "./store.ts";

let store: DynamoStore;
let tableName: string;
beforeAll(async () => {
  ({ store, tableName } = await testTable("store"));
});

const now = () => Math.floor(Date.now() / 1000);

describe("DynamoStore", () => {
  it("puts and gets an item", async () => {
    await store.put({ pk: "A#1", sk: "X", name: "one" });
    expect(await store.get({ pk: "A#1", sk: "X" })).toEqual({ pk: "A#1", sk: "X", name: "one" });
    expect(await store.get({ pk: "A#1", sk: "missing" })).toBeUndefined();
  });

  it("enforces conditional puts", async () => {
    await store.put({ pk: "C#1", sk: "X", v: 1 }, { condition: cond.notExists() });
    await expect(store.put({ pk: "C#1", sk: "X", v: 2 }, { condition: cond.notExists() })).rejects.toBeInstanceOf(
      ConditionFailedError,
    );
    expect((await store.get({ pk: "C#1", sk: "X" }))?.v).toBe(1);
  });

  it("updates with set, add and remove, guarded by a version", async () => {
    await store.put({ pk: "U#1", sk: "X", version: 1, count: 1, note: "a" });
    const after = await store.update(
      { pk: "U#1", sk: "X" },
      { set: { version: 2 }, add: { count: 5 }, remove: ["note"], condition: cond.eq("version", 1) },
    );
    expect(after).toEqual({ pk: "U#1", sk: "X", version: 2, count: 6 });
    await expect(
      store.update({ pk: "U#1", sk: "X" }, { set: { version: 3 }, condition: cond.eq("version", 1) }),
    ).rejects.toBeInstanceOf(ConditionFailedError);
  });

  it("treats items past their expiresAt as absent, on get, query and conditional put", async () => {
    await store.put({ pk: "T#1", sk: "old", expiresAt: now() - 10 });
    await store.put({ pk: "T#1", sk: "new", expiresAt: now() + 3600 });
    expect(await store.get({ pk: "T#1", sk: "old" })).toBeUndefined();
    expect((await store.query({ pk: "T#1" })).items.map((i) => i.sk)).toEqual(["new"]);
    // An expired guard no longer blocks a new one.
    await store.put({ pk: "T#1", sk: "old", expiresAt: now() + 60 }, { condition: cond.notExists() });
    await expect(store.put({ pk: "T#1", sk: "new" }, { condition: cond.notExists() })).rejects.toBeInstanceOf(
      ConditionFailedError,
    );
  });

  it("writes transactions all or nothing and names the failed operation", async () => {
    await store.put({ pk: "G#taken", sk: "GUARD" });
    const err = await store
      .transact([
        { put: { pk: "E#1", sk: "E" }, condition: cond.notExists() },
        { put: { pk: "G#taken", sk: "GUARD" }, condition: cond.notExists() },
      ])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConditionFailedError);
    expect((err as ConditionFailedError).failedIndexes).toEqual([1]);
    expect(await store.get({ pk: "E#1", sk: "E" })).toBeUndefined();

    await store.transact([
      { put: { pk: "E#2", sk: "E" }, condition: cond.notExists() },
      { update: { pk: "G#taken", sk: "GUARD", add: { uses: 1 } } },
      { check: { pk: "E#1-missing", sk: "E" }, condition: cond.attrNotExists("pk") },
    ]);
    expect(await store.get({ pk: "E#2", sk: "E" })).toBeDefined();
  });

  it("lets exactly one of many racing guarded transactions win", async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) =>
        store.transact([
          { put: { pk: `R#${i}`, sk: "USER" }, condition: cond.notExists() },
          { put: { pk: "EMAIL#race@example.com", sk: "GUARD", owner: i }, condition: cond.notExists() },
        ]),
      ),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results) if (r.status === "rejected") expect(r.reason).toBeInstanceOf(ConditionFailedError);
  });

  it("pages with opaque cursors, forwards and backwards, on the table and an index", async () => {
    for (let i = 0; i < 7; i++) {
      await store.put({ pk: "P#1", sk: `item#${i}`, gsi1pk: "IDX#1", gsi1sk: String(200 - i) });
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { items: { sk: string }[]; nextCursor: string | null } = await store.query({
        pk: "P#1",
        sk: { beginsWith: "item#" },
        limit: 3,
        cursor,
      });
      seen.push(...page.items.map((i) => i.sk));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual(Array.from({ length: 7 }, (_, i) => `item#${i}`));

    const last = await store.query({ pk: "P#1", limit: 7 });
    expect(last.nextCursor).toBeNull();

    const byIndex = await store.query({ index: "gsi1", pk: "IDX#1", limit: 4, reverse: true });
    expect(byIndex.items.map((i) => i.gsi1sk)).toEqual(["200", "199", "198", "197"]);
    const rest = await store.query({ index: "gsi1", pk: "IDX#1", limit: 4, reverse: true, cursor: byIndex.nextCursor });
    expect(rest.items.map((i) => i.gsi1sk)).toEqual(["196", "195", "194"]);
    expect(rest.nextCursor).toBeNull();
  });

  it("filters queries and still fills the page", async () => {
    for (let i = 0; i < 9; i++) await store.put({ pk: "F#1", sk: `i#${i}`, kind: i % 3 === 0 ? "keep" : "drop", n: i });
    const one = await store.query({ pk: "F#1", filter: cond.and(cond.eq("kind", "keep")), limit: 2 });
    expect(one.items.map((i) => i.n)).toEqual([0, 3]);
    const rest = await store.query({ pk: "F#1", filter: cond.eq("kind", "keep"), limit: 2, cursor: one.nextCursor });
    expect(rest.items.map((i) => i.n)).toEqual([6]);
    expect(rest.nextCursor).toBeNull();
    const both = await store.query({ pk: "F#1", filter: cond.and(cond.eq("kind", "keep"), cond.compare("n", ">", 0)) });
    expect(both.items.map((i) => i.n)).toEqual([3, 6]);
  });

  it("refuses a cursor from another partition or a forged one", async () => {
    await store.put({ pk: "P#2", sk: "a" });
    await store.put({ pk: "P#2", sk: "b" });
    const { nextCursor } = await store.query({ pk: "P#2", limit: 1 });
    await expect(store.query({ pk: "P#1", cursor: nextCursor })).rejects.toBeInstanceOf(ValidationError);
    await expect(store.query({ pk: "P#1", cursor: "not-a-cursor" })).rejects.toBeInstanceOf(ValidationError);
  });

  it("composes nested conditions without redundant parentheses", async () => {
    await store.put({ pk: "N#1", sk: "X", holder: "a", leaseUntil: 1 });
    const taken = cond.or(cond.notExists(), cond.compare("leaseUntil", "<", 5), cond.eq("holder", "b"));
    await store.put({ pk: "N#1", sk: "X", holder: "b", leaseUntil: 10 }, { condition: taken });
    await expect(
      store.put(
        { pk: "N#1", sk: "X", holder: "c" },
        { condition: cond.and(cond.or(cond.notExists(), cond.eq("holder", "z")), cond.exists()) },
      ),
    ).rejects.toBeInstanceOf(ConditionFailedError);
    const filtered = await store.query({
      pk: "N#1",
      filter: cond.or(cond.attrNotExists("holder"), cond.eq("holder", "b")),
    });
    expect(filtered.items).toHaveLength(1);
  });

  it("batch-puts more than one batch", async () => {
    await store.batchPut(
      Array.from({ length: 60 }, (_, i) => ({ pk: "B#1", sk: `x#${String(i).padStart(3, "0")}`, i })),
    );
    const all = await store.query({ pk: "B#1", limit: 100 });
    expect(all.items.map((x) => x.i)).toEqual(Array.from({ length: 60 }, (_, i) => i));
  });

  it("batch-gets in the order asked, with gaps for absent, expired and repeated keys, past 100 keys", async () => {
    await store.batchPut([
      { pk: "BG#1", sk: "X", v: 1 },
      { pk: "BG#2", sk: "X", v: 2, expiresAt: now() - 10 },
      ...Array.from({ length: 150 }, (_, i) => ({ pk: "BG#many", sk: String(i).padStart(3, "0"), i })),
    ]);
    const got = await store.batchGet([
      { pk: "BG#missing", sk: "X" },
      { pk: "BG#1", sk: "X" },
      { pk: "BG#2", sk: "X" },
      { pk: "BG#1", sk: "X" },
    ]);
    expect(got).toEqual([undefined, { pk: "BG#1", sk: "X", v: 1 }, undefined, { pk: "BG#1", sk: "X", v: 1 }]);
    const many = await store.batchGet(
      Array.from({ length: 150 }, (_, i) => ({ pk: "BG#many", sk: String(i).padStart(3, "0") })),
    );
    expect(many.map((item) => item?.i)).toEqual(Array.from({ length: 150 }, (_, i) => i));
    expect(await store.batchGet([])).toEqual([]);
  });

  it("batch-gets again the keys DynamoDB left unprocessed", async () => {
    const client = new DynamoDBClient({
      endpoint: inject("dynamoEndpoint"),
      region: "local",
      credentials: { accessKeyId: "hoist", secretAccessKey: "local" },
    });
    // The first BatchGetItem answers only its first item and hands the rest back as UnprocessedKeys (as a throttled table does).
    let requests = 0;
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const out = await next(args);
        if (context.commandName !== "BatchGetItemCommand" || requests++ > 0) return out;
        const output = out.output as {
          Responses?: Record<string, Record<string, unknown>[]>;
          UnprocessedKeys?: Record<string, { Keys: Record<string, unknown>[] }>;
        };
        const items = output.Responses?.[tableName] ?? [];
        output.Responses = { [tableName]: items.slice(0, 1) };
        output.UnprocessedKeys = { [tableName]: { Keys: items.slice(1).map(({ pk, sk }) => ({ pk, sk })) } };
        return out;
      },
      { step: "initialize" },
    );
    await store.batchPut([1, 2, 3].map((v) => ({ pk: `BU#${v}`, sk: "X", v })));
    const flaky = new DynamoStore(client, tableName);
    const got = await flaky.batchGet([1, 2, 3].map((v) => ({ pk: `BU#${v}`, sk: "X" })));
    expect(got.map((item) => item?.v)).toEqual([1, 2, 3]);
    expect(requests).toBe(2);
  });

  it("deletes conditionally and returns what it deleted", async () => {
    await store.put({ pk: "D#1", sk: "X", status: "stopped" });
    await expect(
      store.delete({ pk: "D#1", sk: "X" }, { condition: cond.eq("status", "running") }),
    ).rejects.toBeInstanceOf(ConditionFailedError);
    expect(await store.delete({ pk: "D#1", sk: "X" })).toMatchObject({ status: "stopped" });
    expect(await store.get({ pk: "D#1", sk: "X" })).toBeUndefined();
  });
});
