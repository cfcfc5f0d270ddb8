import type { Key, QuerySpec, Store, TransactOp } from "../store/store.ts";

/**
 * The Store, with every call recorded as `method` + the kind of each key (the
 * key's first `#` part; rate windows with their scope; a query with its
 * partition), so a test reads which DynamoDB round trips one request awaited.
 * `uncounted` calls are recorded but start no wave (work nobody waits for).
 */
export function countingStore(
  store: Store,
  opts: { uncounted?: (call: string) => boolean } = {},
): { store: Store; calls: string[]; waves: () => number } {
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
    const keys =
      method === "batchGet"
        ? (args[0] as Key[])
        : method === "transact"
          ? (args[0] as TransactOp[]).map((op) =>
              "put" in op ? op.put : "update" in op ? op.update : "delete" in op ? op.delete : op.check,
            )
          : [args[0] as Key];
    return `${method} ${keys.map(kind).join(",")}`;
  };
  const counted = new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      return async (...args: unknown[]) => {
        const call = label(String(prop), args);
        calls.push(call);
        if (opts.uncounted?.(call)) return value.apply(target, args);
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
