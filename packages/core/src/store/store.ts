import type { IndexName } from "./table.ts";

/** The single-table Store port. Keys are built only by entity modules (`<domain>/entity.ts`). */
export type Key = {
  pk: string;
  sk: string;
};

export type Item = Key & Record<string, unknown>;

/** A condition expression with named placeholders; build them with `cond` below. */
export interface Condition {
  expression: string;
  names: Record<string, string>;
  values: Record<string, unknown>;
}

export interface UpdateSpec {
  set?: Record<string, unknown>;
  /** Atomic counters: `ADD attr :n`. */
  add?: Record<string, number>;
  remove?: string[];
  condition?: Condition;
}

export type SortCondition =
  | { beginsWith: string }
  | { between: [string, string] }
  | { lte: string }
  | { gte: string }
  | { lt: string }
  | { gt: string };

export interface QuerySpec {
  index?: IndexName;
  /** Partition key value (of the table, or of the index). */
  pk: string;
  sk?: SortCondition;
  limit?: number;
  /** Opaque cursor from a previous page's `nextCursor`. */
  cursor?: string | null;
  /** Newest first (descending sort key). */
  reverse?: boolean;
  consistent?: boolean;
  /** Applied after the key condition; pages are still filled up to `limit` where items remain. */
  filter?: Condition;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export type TransactOp =
  | { put: Item; condition?: Condition }
  | { update: Key & UpdateSpec }
  | { delete: Key; condition?: Condition }
  | { check: Key; condition: Condition };

export interface Store {
  get<T extends Item = Item>(key: Key, opts?: { consistent?: boolean }): Promise<T | undefined>;
  /**
   * Several items in one BatchGetItem (per 100 keys), answered in the order of `keys` (undefined where
   * absent), retrying unprocessed keys. Strongly consistent unless `consistent: false`.
   */
  batchGet<T extends Item = Item>(keys: Key[], opts?: { consistent?: boolean }): Promise<(T | undefined)[]>;
  /** Throws ConditionFailedError when the condition does not hold. */
  put(item: Item, opts?: { condition?: Condition }): Promise<void>;
  /** Returns the item as it is after the update. Throws ConditionFailedError. */
  update<T extends Item = Item>(key: Key, spec: UpdateSpec): Promise<T>;
  /** Returns the deleted item, if there was one. Throws ConditionFailedError. */
  delete<T extends Item = Item>(key: Key, opts?: { condition?: Condition }): Promise<T | undefined>;
  query<T extends Item = Item>(spec: QuerySpec): Promise<Page<T>>;
  /** Unconditional puts in batches of 25 (not atomic), retrying unprocessed items. */
  batchPut(items: Item[]): Promise<void>;
  /** All-or-nothing; ConditionFailedError names the failed operations. */
  transact(ops: TransactOp[]): Promise<void>;
  /** Cheap reachability check for /health/ready. */
  ping(): Promise<void>;
}

/** Every item a query matches, page after page (for bounded sets: a project's apps, a channel's subscribers). */
export async function queryAll<T extends Item>(
  store: Pick<Store, "query">,
  spec: Omit<QuerySpec, "cursor">,
): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | null = null;
  do {
    const page: Page<T> = await store.query<T>({ limit: 1000, ...spec, cursor });
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return items;
}

let seq = 0;
const placeholder = () => {
  seq = (seq + 1) % 1_000_000;
  return seq.toString(36);
};

/** Condition builders: each returns its own unique placeholders, so they compose with `and`/`or`. */
export const cond = {
  /** The item does not exist, or exists only as an expired TTL leftover. */
  notExists(nowSeconds = Math.floor(Date.now() / 1000)): Condition {
    const p = placeholder();
    return {
      expression: `(attribute_not_exists(#pk${p}) OR #exp${p} <= :now${p})`,
      names: { [`#pk${p}`]: "pk", [`#exp${p}`]: "expiresAt" },
      values: { [`:now${p}`]: nowSeconds },
    };
  },
  exists(): Condition {
    const p = placeholder();
    return { expression: `attribute_exists(#pk${p})`, names: { [`#pk${p}`]: "pk" }, values: {} };
  },
  attrExists(attr: string): Condition {
    const p = placeholder();
    return { expression: `attribute_exists(#a${p})`, names: { [`#a${p}`]: attr }, values: {} };
  },
  attrNotExists(attr: string): Condition {
    const p = placeholder();
    return { expression: `attribute_not_exists(#a${p})`, names: { [`#a${p}`]: attr }, values: {} };
  },
  compare(attr: string, op: "=" | "<>" | "<" | "<=" | ">" | ">=", value: unknown): Condition {
    const p = placeholder();
    return { expression: `#a${p} ${op} :v${p}`, names: { [`#a${p}`]: attr }, values: { [`:v${p}`]: value } };
  },
  eq(attr: string, value: unknown): Condition {
    return cond.compare(attr, "=", value);
  },
  in(attr: string, values: unknown[]): Condition {
    const p = placeholder();
    const keys = values.map((_, i) => `:v${p}_${i}`);
    return {
      expression: `#a${p} IN (${keys.join(", ")})`,
      names: { [`#a${p}`]: attr },
      values: Object.fromEntries(keys.map((k, i) => [k, values[i]])),
    };
  },
  and(...parts: Condition[]): Condition {
    return join(parts, "AND");
  },
  or(...parts: Condition[]): Condition {
    return join(parts, "OR");
  },
};

/** `(expr)`, unless it already is one parenthesized whole: DynamoDB refuses redundant parentheses. */
export function parenthesize(expression: string): string {
  if (expression.startsWith("(") && expression.endsWith(")")) {
    let depth = 0;
    for (let i = 0; i < expression.length; i++) {
      if (expression[i] === "(") depth++;
      else if (expression[i] === ")") depth--;
      if (depth === 0 && i < expression.length - 1) return `(${expression})`;
    }
    return expression;
  }
  return `(${expression})`;
}

function join(parts: Condition[], op: string): Condition {
  if (parts.length === 1 && parts[0]) return parts[0];
  return {
    expression: parts.map((c) => parenthesize(c.expression)).join(` ${op} `),
    names: Object.assign({}, ...parts.map((c) => c.names)),
    values: Object.assign({}, ...parts.map((c) => c.values)),
  };
}
