import { beforeEach, describe, expect, it } from "vitest";
import { appKey, repoIdBranchPk } from "../../apps/entity.ts";
import { repoSecretKey } from "../../github/repo-entity.ts";
import type { Item, Key, Store } from "../../store/store.ts";
import { testTable } from "../../testing/dynamo.ts";
import { withBindingCache } from "./binding-cache.ts";

/** What reaches DynamoDB under the cache, and a way to hold one call open. */
function recording(store: Store) {
  const calls: string[] = [];
  let gate: { op: string; open: Promise<void> } | undefined;
  const proxy = new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== "function" || typeof prop !== "string") return value;
      return async (...args: unknown[]) => {
        calls.push(prop);
        const result = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        if (gate?.op === prop) {
          const { open } = gate;
          gate = undefined;
          await open;
        }
        return result;
      };
    },
  });
  return {
    store: proxy,
    calls,
    /** The next `op` answers only once `open` resolves (its result read before). */
    holdAfter(op: string, open: Promise<void>) {
      gate = { op, open };
    },
  };
}

const OWNER = "usr_cache";
const app = (id: string, branch: string, autoDeploy = true): Item => ({
  ...appKey(OWNER, id),
  entity: "app",
  id,
  ownerId: OWNER,
  repository: { id: 7, fullName: "octo/shop", branch, autoDeploy, deployOn: "push" },
  gsi3pk: repoIdBranchPk(7, branch),
  gsi3sk: `APP#${id}`,
});
const onMain = { index: "gsi3", pk: repoIdBranchPk(7, "main") } as const;
const ids = async (store: Store) => (await store.query(onMain)).items.map((i) => i.id);

let db: ReturnType<typeof recording>;
let cache: Store;
beforeEach(async () => {
  db = recording((await testTable("cache")).store);
  cache = withBindingCache(db.store);
});

describe("binding cache", () => {
  it("answers a repeated query and secret read from memory, and a write elsewhere keeps them", async () => {
    await cache.put(app("app_a", "main"));
    await cache.put({ ...repoSecretKey(7), entity: "repo-secret", repoId: 7, fullName: "octo/shop", secret: "s" });
    expect(await ids(cache)).toEqual(["app_a"]);
    expect((await cache.get(repoSecretKey(7)))?.secret).toBe("s");
    db.calls.length = 0;
    expect(await ids(cache)).toEqual(["app_a"]);
    expect((await cache.batchGet([repoSecretKey(7)]))[0]?.secret).toBe("s");
    // An app's status, a deployment, its env: not bindings.
    await cache.update(appKey(OWNER, "app_a"), { set: { status: "running" } });
    await cache.put({ pk: "DEP#dep_1", sk: "DEP", entity: "deployment" });
    expect(await ids(cache)).toEqual(["app_a"]);
    expect(db.calls).toEqual(["update", "put"]);
  });

  it("hands out copies: a caller changing what it got changes nothing remembered", async () => {
    await cache.put(app("app_a", "main"));
    const first = (await cache.query(onMain)).items[0] as Item;
    first.id = "mutated";
    expect(await ids(cache)).toEqual(["app_a"]);
  });

  const writes: [string, (store: Store) => Promise<unknown>][] = [
    ["a new app put", (s) => s.put(app("app_b", "main"))],
    ["an app deleted", (s) => s.delete(appKey(OWNER, "app_a"))],
    [
      "a nested binding attribute updated",
      (s) => s.update(appKey(OWNER, "app_a"), { set: { "repository.autoDeploy": false } }),
    ],
    [
      "an app moved to another branch in a transaction",
      (s) =>
        s.transact([
          { put: { pk: "AUDIT#x", sk: "A", entity: "audit" } },
          { update: { ...appKey(OWNER, "app_a"), set: { gsi3pk: repoIdBranchPk(7, "dev") } } },
        ]),
    ],
    ["a batch put of apps", (s) => s.batchPut([app("app_b", "main")])],
  ];
  for (const [name, write] of writes) {
    it(`forgets on ${name}`, async () => {
      await cache.put(app("app_a", "main"));
      const before = (await cache.query(onMain)).items;
      await write(cache);
      db.calls.length = 0;
      const after = (await cache.query(onMain)).items;
      expect(db.calls).toEqual(["query"]);
      expect(after).not.toEqual(before);
    });
  }

  it("forgets a secret when it is rotated", async () => {
    const secret = (value: string) => ({ ...repoSecretKey(7), entity: "repo-secret", secret: value });
    await cache.put(secret("old"));
    expect((await cache.get(repoSecretKey(7)))?.secret).toBe("old");
    await cache.update(repoSecretKey(7) as Key, { set: { secret: "new" } });
    expect((await cache.get(repoSecretKey(7)))?.secret).toBe("new");
    await cache.delete(repoSecretKey(7));
    expect(await cache.get(repoSecretKey(7))).toBeUndefined();
  });

  it("keeps a bounded number of entries, the oldest out first", async () => {
    const small = withBindingCache(db.store, { maxEntries: 3 });
    for (const id of [1, 2, 3, 4]) await small.get(repoSecretKey(id)); // absent secrets: remembered too
    db.calls.length = 0;
    for (const id of [4, 3, 2]) await small.get(repoSecretKey(id));
    expect(db.calls).toEqual([]);
    await small.get(repoSecretKey(1));
    expect(db.calls).toEqual(["get"]);
  });

  it("does not keep a read that raced a binding write", async () => {
    await cache.put(app("app_a", "main"));
    let open = () => {};
    db.holdAfter("query", new Promise<void>((resolve) => (open = resolve)));
    // The query reads the old binding, then the write lands before the query's answer is back.
    const stale = ids(cache);
    await new Promise((r) => setTimeout(r, 50));
    await cache.update(appKey(OWNER, "app_a"), { set: { gsi3pk: repoIdBranchPk(7, "dev") } });
    open();
    expect(await stale).toEqual(["app_a"]); // answered as read: the write was concurrent
    db.calls.length = 0;
    expect(await ids(cache)).toEqual([]); // but not remembered
    expect(db.calls).toEqual(["query"]);
  });
});
