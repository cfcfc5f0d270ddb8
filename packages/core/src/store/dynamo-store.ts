import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { type DynamoDBClient, TransactionCanceledException } from "@aws-sdk/client-dynamodb";
import {
  BatchGetCommand,
  BatchWriteCommand,
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  type QueryCommandInput,
  TransactWriteCommand,
  type TransactWriteCommandInput,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import { ConditionFailedError, ValidationError } from "../errors.ts";
import {
  type Condition,
  type Item,
  type Key,
  type Page,
  parenthesize,
  type QuerySpec,
  type SortCondition,
  type Store,
  type TransactOp,
  type UpdateSpec,
} from "./store.ts";
import { table } from "./table.ts";

type TransactItem = NonNullable<TransactWriteCommandInput["TransactItems"]>[number];

const nowSeconds = () => Math.floor(Date.now() / 1000);
const isLive = (item: Record<string, unknown> | undefined): boolean =>
  item !== undefined && !(typeof item.expiresAt === "number" && item.expiresAt <= nowSeconds());

/**
 * The Store over `@aws-sdk/lib-dynamodb`: DynamoDB on AWS, DynamoDB Local
 * embedded. Items whose TTL (`expiresAt`, seconds) has passed are treated as
 * absent on every read, since neither DynamoDB nor the emulator deletes them
 * promptly.
 */
export class DynamoStore implements Store {
  private readonly doc: DynamoDBDocumentClient;
  private readonly cursors: CursorCodec;

  constructor(
    client: DynamoDBClient,
    readonly tableName: string,
    /**
     * Signs list cursors, so a cursor Hoist did not issue is refused (400), never
     * handed to DynamoDB. Keep it stable across restarts and instances (a file in
     * the data dir embedded, derived from a stage secret on AWS); by default a
     * random one per process.
     */
    opts: { cursorKey?: Uint8Array } = {},
  ) {
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
    this.cursors = new CursorCodec(opts.cursorKey ?? randomBytes(32), tableName);
  }

  async get<T extends Item = Item>(key: Key, opts: { consistent?: boolean } = {}): Promise<T | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: keyOf(key), ConsistentRead: opts.consistent ?? true }),
    );
    return isLive(out.Item) ? (out.Item as T) : undefined;
  }

  async batchGet<T extends Item = Item>(keys: Key[], opts: { consistent?: boolean } = {}): Promise<(T | undefined)[]> {
    // BatchGetItem refuses a key asked twice in one request: ask each once, answer every position.
    const unique = [...new Map(keys.map((k) => [keyId(k), keyOf(k)])).values()];
    const found = new Map<string, T>();
    for (let i = 0; i < unique.length; i += 100) {
      for (const item of await this.batchRead(unique.slice(i, i + 100), opts.consistent ?? true))
        if (isLive(item)) found.set(keyId(item as Key), item as T);
    }
    return keys.map((k) => found.get(keyId(k)));
  }

  private async batchRead(chunk: Key[], consistent: boolean): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    let pending: Record<string, unknown>[] = chunk;
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(1000, 20 * 2 ** attempt)));
      const out = await this.doc.send(
        new BatchGetCommand({ RequestItems: { [this.tableName]: { Keys: pending, ConsistentRead: consistent } } }),
      );
      items.push(...(out.Responses?.[this.tableName] ?? []));
      pending = out.UnprocessedKeys?.[this.tableName]?.Keys ?? [];
      if (attempt > 8 && pending.length > 0) throw new Error(`${pending.length} items were not read (throttled)`);
    }
    return items;
  }

  async put(item: Item, opts: { condition?: Condition } = {}): Promise<void> {
    await conditional(() =>
      this.doc.send(new PutCommand({ TableName: this.tableName, Item: item, ...conditionParams(opts.condition) })),
    );
  }

  async update<T extends Item = Item>(key: Key, spec: UpdateSpec): Promise<T> {
    const out = await conditional(() =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keyOf(key),
          ...updateParams(spec),
          ReturnValues: "ALL_NEW",
        }),
      ),
    );
    return out.Attributes as T;
  }

  async delete<T extends Item = Item>(key: Key, opts: { condition?: Condition } = {}): Promise<T | undefined> {
    const out = await conditional(() =>
      this.doc.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: keyOf(key),
          ReturnValues: "ALL_OLD",
          ...conditionParams(opts.condition),
        }),
      ),
    );
    return isLive(out.Attributes) ? (out.Attributes as T) : undefined;
  }

  async query<T extends Item = Item>(spec: QuerySpec): Promise<Page<T>> {
    const limit = Math.max(1, Math.min(spec.limit ?? 20, 1000));
    const keyNames = spec.index ? table.indexes.find((i) => i.name === spec.index) : table;
    if (!keyNames) throw new Error(`Unknown index ${spec.index}`);
    const base: QueryCommandInput = {
      TableName: this.tableName,
      IndexName: spec.index,
      KeyConditionExpression: `#pk = :pk${spec.sk ? ` AND ${sortExpression(spec.sk)}` : ""}`,
      FilterExpression: `(attribute_not_exists(#exp) OR #exp > :now)${spec.filter ? ` AND ${parenthesize(spec.filter.expression)}` : ""}`,
      ExpressionAttributeNames: {
        "#pk": keyNames.partitionKey,
        "#sk": keyNames.sortKey,
        "#exp": table.ttlAttribute,
        ...spec.filter?.names,
      },
      ExpressionAttributeValues: {
        ":pk": spec.pk,
        ":now": nowSeconds(),
        ...sortValues(spec.sk),
        ...spec.filter?.values,
      },
      ScanIndexForward: !spec.reverse,
      ConsistentRead: spec.index ? undefined : (spec.consistent ?? true),
    };
    if (!spec.sk) delete base.ExpressionAttributeNames?.["#sk"];

    // Ask for one more than the page so `nextCursor` is null on the last page;
    // keep going while the TTL filter leaves the page short.
    const items: Record<string, unknown>[] = [];
    let start = spec.cursor ? this.cursors.decode(spec.cursor, spec.index, keyNames.partitionKey, spec.pk) : undefined;
    for (let round = 0; round < 20; round++) {
      const out = await this.doc.send(
        new QueryCommand({ ...base, Limit: limit + 1 - items.length, ExclusiveStartKey: start }),
      );
      items.push(...(out.Items ?? []));
      start = out.LastEvaluatedKey;
      if (!start || items.length > limit) break;
    }
    if (items.length > limit) {
      items.length = limit;
      return { items: items as T[], nextCursor: this.cursors.encode(cursorKey(items[limit - 1] ?? {}, spec.index)) };
    }
    return { items: items as T[], nextCursor: start ? this.cursors.encode(start) : null };
  }

  async batchPut(items: Item[]): Promise<void> {
    const chunks: Item[][] = [];
    for (let i = 0; i < items.length; i += 25) chunks.push(items.slice(i, i + 25));
    // A few requests in flight at once; each retries its own unprocessed items.
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < chunks.length; i = next++) await this.batchWrite(chunks[i] as Item[]);
    };
    await Promise.all(Array.from({ length: Math.min(4, chunks.length) }, worker));
  }

  private async batchWrite(chunk: Item[]): Promise<void> {
    let requests = chunk.map((Item) => ({ PutRequest: { Item } }));
    for (let attempt = 0; requests.length > 0; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(1000, 20 * 2 ** attempt)));
      const out = await this.doc.send(new BatchWriteCommand({ RequestItems: { [this.tableName]: requests } }));
      requests = (out.UnprocessedItems?.[this.tableName] ?? []) as typeof requests;
      if (attempt > 8 && requests.length > 0) throw new Error(`${requests.length} items were not written (throttled)`);
    }
  }

  async transact(ops: TransactOp[]): Promise<void> {
    const TransactItems = ops.map((op) => this.transactItem(op));
    // Racing transactions on one item get TransactionConflict; retry those briefly.
    for (let attempt = 0; ; attempt++) {
      try {
        await this.doc.send(new TransactWriteCommand({ TransactItems }));
        return;
      } catch (err) {
        if (!(err instanceof TransactionCanceledException)) throw err;
        const reasons = err.CancellationReasons ?? [];
        const failed = reasons.flatMap((r, i) => (r.Code === "ConditionalCheckFailed" ? [i] : []));
        if (failed.length > 0) throw new ConditionFailedError(failed);
        if (attempt >= 4 || !reasons.some((r) => r.Code === "TransactionConflict")) throw err;
        await new Promise((r) => setTimeout(r, 10 * 2 ** attempt + Math.random() * 20));
      }
    }
  }

  async ping(): Promise<void> {
    await this.doc.send(new GetCommand({ TableName: this.tableName, Key: { pk: "HEALTH", sk: "HEALTH" } }));
  }

  private transactItem(op: TransactOp): TransactItem {
    const TableName = this.tableName;
    if ("put" in op) return { Put: { TableName, Item: op.put, ...conditionParams(op.condition) } };
    if ("update" in op) return { Update: { TableName, Key: keyOf(op.update), ...updateParams(op.update) } };
    if ("delete" in op) return { Delete: { TableName, Key: keyOf(op.delete), ...conditionParams(op.condition) } };
    const check = op.condition;
    return {
      ConditionCheck: {
        TableName,
        Key: keyOf(op.check),
        ConditionExpression: check.expression,
        ExpressionAttributeNames: check.names,
        ...(Object.keys(check.values).length > 0 ? { ExpressionAttributeValues: check.values } : {}),
      },
    };
  }
}

async function conditional<T>(send: () => Promise<T>): Promise<T> {
  try {
    return await send();
  } catch (err) {
    if (err instanceof Error && err.name === "ConditionalCheckFailedException") throw new ConditionFailedError();
    throw err;
  }
}

const keyOf = (k: Key): Key => ({ pk: k.pk, sk: k.sk });
const keyId = (k: Key) => `${k.pk}\n${k.sk}`;

function conditionParams(c: Condition | undefined) {
  if (!c) return {};
  return {
    ConditionExpression: c.expression,
    ExpressionAttributeNames: c.names,
    ...(Object.keys(c.values).length > 0 ? { ExpressionAttributeValues: c.values } : {}),
  };
}

function updateParams(spec: UpdateSpec) {
  const names: Record<string, string> = {};
  const values: Record<string, unknown> = {};
  const name = (attr: string) => {
    const n = `#u${Object.keys(names).length}`;
    names[n] = attr;
    return n;
  };
  const value = (v: unknown) => {
    const n = `:u${Object.keys(values).length}`;
    values[n] = v;
    return n;
  };
  const clauses: string[] = [];
  const set = Object.entries(spec.set ?? {}).filter(([, v]) => v !== undefined);
  if (set.length) clauses.push(`SET ${set.map(([k, v]) => `${name(k)} = ${value(v)}`).join(", ")}`);
  const add = Object.entries(spec.add ?? {});
  if (add.length) clauses.push(`ADD ${add.map(([k, v]) => `${name(k)} ${value(v)}`).join(", ")}`);
  if (spec.remove?.length) clauses.push(`REMOVE ${spec.remove.map(name).join(", ")}`);
  if (clauses.length === 0) throw new Error("Empty update");
  const condition = spec.condition;
  return {
    UpdateExpression: clauses.join(" "),
    ...(condition ? { ConditionExpression: condition.expression } : {}),
    ExpressionAttributeNames: { ...names, ...condition?.names },
    ...(Object.keys(values).length + Object.keys(condition?.values ?? {}).length > 0
      ? { ExpressionAttributeValues: { ...values, ...condition?.values } }
      : {}),
  };
}

function sortExpression(sk: SortCondition): string {
  if ("beginsWith" in sk) return "begins_with(#sk, :sk)";
  if ("between" in sk) return "#sk BETWEEN :sk AND :sk2";
  const op = { lte: "<=", gte: ">=", lt: "<", gt: ">" } as const;
  const [k] = Object.keys(sk) as (keyof typeof op)[];
  return `#sk ${op[k as keyof typeof op]} :sk`;
}

function sortValues(sk: SortCondition | undefined): Record<string, string> {
  if (!sk) return {};
  if ("between" in sk) return { ":sk": sk.between[0], ":sk2": sk.between[1] };
  return { ":sk": Object.values(sk)[0] as string };
}

/** The key attributes a page ends at: the table's, plus the index's when querying one. */
function keyAttributes(index: QuerySpec["index"]): string[] {
  const attrs: string[] = [table.partitionKey, table.sortKey];
  const idx = table.indexes.find((i) => i.name === index);
  if (idx) attrs.push(idx.partitionKey, idx.sortKey);
  return attrs;
}

function cursorKey(item: Record<string, unknown>, index: QuerySpec["index"]): Record<string, unknown> {
  return Object.fromEntries(keyAttributes(index).map((a) => [a, item[a]]));
}

const invalidCursor = () =>
  new ValidationError("Invalid cursor", [{ path: "query.cursor", message: "Not a cursor from this list" }]);

/**
 * Cursors are the last key of a page, base64url JSON, with an HMAC: opaque to
 * clients and tamper-evident. On the way in a cursor must carry the MAC, exactly
 * the key attributes of the index queried (all strings), and the partition being
 * read: it can neither reach another tenant's items nor reach DynamoDB malformed.
 */
class CursorCodec {
  constructor(
    private readonly key: Uint8Array,
    private readonly tableName: string,
  ) {}

  encode(key: Record<string, unknown>): string {
    const payload = Buffer.from(JSON.stringify(key)).toString("base64url");
    return `${payload}.${this.mac(payload)}`;
  }

  decode(cursor: string, index: QuerySpec["index"], pkName: string, pk: string): Record<string, string> {
    const dot = cursor.lastIndexOf(".");
    const payload = cursor.slice(0, dot);
    const mac = Buffer.from(cursor.slice(dot + 1));
    const expected = Buffer.from(this.mac(payload));
    if (dot < 0 || mac.length !== expected.length || !timingSafeEqual(mac, expected)) throw invalidCursor();
    let key: unknown;
    try {
      key = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
    } catch {
      throw invalidCursor();
    }
    const attrs = keyAttributes(index).sort();
    if (
      !key ||
      typeof key !== "object" ||
      Array.isArray(key) ||
      Object.keys(key).sort().join("\n") !== attrs.join("\n") ||
      !Object.values(key).every((v) => typeof v === "string") ||
      (key as Record<string, string>)[pkName] !== pk
    )
      throw invalidCursor();
    return key as Record<string, string>;
  }

  private mac(payload: string): string {
    return createHmac("sha256", this.key).update(`${this.tableName}\n${payload}`).digest("base64url").slice(0, 32);
  }
}
