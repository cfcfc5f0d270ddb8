import { APP_BINDING_ATTRIBUTES, isAppKey, isRepoBranchPk } from "../../apps/entity.ts";
import { isDeliverySecretKey } from "../../github/repo-entity.ts";
import type { Item, Key, Page, QuerySpec, Store, TransactOp, UpdateSpec } from "../../store/store.ts";

/** Entries kept at most (a few hundred bytes to a few KiB each). */
const MAX_ENTRIES = 10_000;

export interface CachingStore extends Store {
  /** The store underneath, for tests that count DynamoDB's own round trips. */
  readonly uncached: Store;
}

/**
 * The embedded runtime's Store, remembering what a GitHub delivery reads
 * before it may write: the apps bound to the repository's branch (the gsi3
 * queries of `appsOnRepoBranch`) and the secret items signatures are checked
 * with. A push then costs its one transaction (webhooks.ts).
 *
 * Exact, not a time-to-live: every write to the table goes through this one
 * process, and each write that may change what is remembered (an app's item
 * put or deleted, an update of its binding attributes, a secret item written)
 * forgets everything, before it is sent and again when it is done, so a read
 * that raced the write is never kept. Writes of anything else (an app's
 * status, deployments, audit) keep it. Not for Lambda: an instance does not
 * see another's writes, so there every delivery reads.
 */
export function withBindingCache(store: Store, opts: { maxEntries?: number } = {}): CachingStore {
  const maxEntries = opts.maxEntries ?? MAX_ENTRIES;
  let generation = 0;
  let remembered = new Map<string, unknown>();
  const forget = () => {
    generation++;
    remembered = new Map();
  };
  /** Oldest out first: anyone may name any repository id in an unsigned payload, and its absent secret is read. */
  const remember = (key: string, value: unknown) => {
    if (remembered.size >= maxEntries) remembered.delete(remembered.keys().next().value as string);
    remembered.set(key, structuredClone(value));
  };

  /** `read`'s answer, remembered under `key` unless a binding write started or ended meanwhile. */
  async function cached<T>(key: string, read: () => Promise<T>): Promise<T> {
    if (remembered.has(key)) return structuredClone(remembered.get(key) as T);
    const at = generation;
    const value = await read();
    if (generation === at) remember(key, value);
    return value;
  }

  async function writing<T>(touches: boolean, write: () => Promise<T>): Promise<T> {
    if (!touches) return write();
    forget();
    try {
      return await write();
    } finally {
      forget();
    }
  }

  const secretKey = (key: Key) => `item ${key.pk} ${key.sk}`;

  return {
    uncached: store,
    get: <T extends Item>(key: Key, opts?: { consistent?: boolean }) =>
      isDeliverySecretKey(key) ? cached(secretKey(key), () => store.get<T>(key, opts)) : store.get<T>(key, opts),

    async batchGet<T extends Item>(keys: Key[], opts?: { consistent?: boolean }) {
      const known = keys.map((key) => isDeliverySecretKey(key) && remembered.has(secretKey(key)));
      const asked = keys.filter((_, i) => !known[i]);
      const at = generation;
      const found = asked.length > 0 ? await store.batchGet<T>(asked, opts) : [];
      let next = 0;
      return keys.map((key, i) => {
        if (known[i]) return structuredClone(remembered.get(secretKey(key)) as T | undefined);
        const item = found[next++];
        if (isDeliverySecretKey(key) && generation === at) remember(secretKey(key), item);
        return item;
      });
    },

    query: <T extends Item>(spec: QuerySpec): Promise<Page<T>> =>
      spec.index === "gsi3" && isRepoBranchPk(spec.pk) && !spec.cursor
        ? cached(`query ${JSON.stringify(spec)}`, () => store.query<T>(spec))
        : store.query<T>(spec),

    put: (item, opts) => writing(writesBinding(item), () => store.put(item, opts)),
    update: <T extends Item>(key: Key, spec: UpdateSpec) =>
      writing(updatesBinding(key, spec), () => store.update<T>(key, spec)),
    delete: <T extends Item>(key: Key, opts?: Parameters<Store["delete"]>[1]) =>
      writing(writesBinding(key), () => store.delete<T>(key, opts)),
    batchPut: (items) => writing(items.some(writesBinding), () => store.batchPut(items)),
    transact: (ops) => writing(ops.some(opTouchesBinding), () => store.transact(ops)),
    ping: () => store.ping(),
  };
}

/** A put or delete of an app's item or of a delivery secret. */
const writesBinding = (key: Key) => isAppKey(key) || isDeliverySecretKey(key);

/** An update of a delivery secret, or of an app's binding attributes (`repository.branch` counts as `repository`). */
function updatesBinding(key: Key, spec: UpdateSpec): boolean {
  if (isDeliverySecretKey(key)) return true;
  if (!isAppKey(key)) return false;
  const names = [...Object.keys(spec.set ?? {}), ...Object.keys(spec.add ?? {}), ...(spec.remove ?? [])];
  return names.some((name) => (APP_BINDING_ATTRIBUTES as readonly string[]).includes(name.split(".")[0] ?? name));
}

function opTouchesBinding(op: TransactOp): boolean {
  if ("put" in op) return writesBinding(op.put);
  if ("update" in op) return updatesBinding(op.update, op.update);
  if ("delete" in op) return writesBinding(op.delete);
  return false;
}
