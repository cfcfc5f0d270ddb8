import { newId } from "../ids.ts";
import type { Deps } from "../ports.ts";
import { type Condition, cond } from "../store/store.ts";
import { type AuditItem, auditKeys } from "./entity.ts";

export interface AuditEntry {
  userId: string | null;
  action: string;
  resourceType: string;
  resourceId?: string | null;
  details?: Record<string, unknown>;
  ipAddress?: string | null;
}

/** The one way every module writes to the audit log. Details must not hold secrets. */
export async function recordAudit(deps: Pick<Deps, "store">, entry: AuditEntry, now = Date.now()): Promise<void> {
  await deps.store.put(auditItem(entry, now));
}

/** The stored item of an audit entry, for a transaction that must write it with what it records. */
export function auditItem(entry: AuditEntry, now = Date.now()): AuditItem {
  const id = newId("aud");
  const sort = auditKeys.sort(now, id);
  const resourceId = entry.resourceId ?? null;
  return {
    pk: auditKeys.byUser(entry.userId),
    sk: sort,
    entity: "audit",
    id,
    userId: entry.userId,
    action: entry.action,
    resourceType: entry.resourceType,
    resourceId,
    details: entry.details ?? {},
    ipAddress: entry.ipAddress ?? null,
    createdAt: now,
    gsi1pk: auditKeys.byMonth(auditKeys.month(now)),
    gsi1sk: sort,
    gsi2pk: auditKeys.byResource(entry.resourceType, resourceId ?? "-"),
    gsi2sk: sort,
  };
}

/** The audit entry of a mutation an actor made on one of their resources. */
export function auditAction(
  deps: Pick<Deps, "store">,
  actor: { userId: string; ip: string | null },
  resourceType: string,
  action: string,
  resourceId: string,
  details: Record<string, unknown>,
): Promise<void> {
  return recordAudit(deps, { userId: actor.userId, action, resourceType, resourceId, details, ipAddress: actor.ip });
}

export interface AuditQuery {
  viewer: { id: string; role: "admin" | "member" };
  resourceType?: string;
  resourceId?: string;
  action?: string;
  userId?: string;
  limit: number;
  cursor?: string;
}

export type AuditLog = Omit<AuditItem, "pk" | "sk" | "entity" | "gsi1pk" | "gsi1sk" | "gsi2pk" | "gsi2sk">;

const MONTHS_BACK = 24;

/** Members read their own entries; admins read everyone's. Newest first. */
export async function listAudit(
  deps: Pick<Deps, "store">,
  q: AuditQuery,
): Promise<{ items: AuditLog[]; nextCursor: string | null }> {
  const filters: Condition[] = [];
  if (q.action) filters.push(cond.eq("action", q.action));
  if (q.resourceType && !q.resourceId) filters.push(cond.eq("resourceType", q.resourceType));
  const admin = q.viewer.role === "admin";
  const userId = admin ? q.userId : q.viewer.id;
  if (userId && q.resourceType && q.resourceId) filters.push(cond.eq("userId", userId));
  const filter = filters.length > 0 ? cond.and(...filters) : undefined;

  if (q.resourceType && q.resourceId) {
    const page = await deps.store.query<AuditItem>({
      index: "gsi2",
      pk: auditKeys.byResource(q.resourceType, q.resourceId),
      reverse: true,
      limit: q.limit,
      cursor: q.cursor,
      filter,
    });
    return { items: page.items.map(toAuditLog), nextCursor: page.nextCursor };
  }
  if (userId) {
    const page = await deps.store.query<AuditItem>({
      pk: auditKeys.byUser(userId),
      reverse: true,
      limit: q.limit,
      cursor: q.cursor,
      filter,
    });
    return { items: page.items.map(toAuditLog), nextCursor: page.nextCursor };
  }
  return listAllByMonth(deps, q.limit, q.cursor, filter);
}

/** Admins' view of everything: month partitions, newest first; the cursor remembers the month. */
async function listAllByMonth(
  deps: Pick<Deps, "store">,
  limit: number,
  cursor: string | undefined,
  filter: Condition | undefined,
) {
  let { month, inner } = decodeMonthCursor(cursor);
  const items: AuditLog[] = [];
  for (let i = 0; i < MONTHS_BACK && items.length < limit; i++) {
    const page = await deps.store.query<AuditItem>({
      index: "gsi1",
      pk: auditKeys.byMonth(month),
      reverse: true,
      limit: limit - items.length,
      cursor: inner,
      filter,
    });
    items.push(...page.items.map(toAuditLog));
    if (page.nextCursor) return { items, nextCursor: encodeMonthCursor(month, page.nextCursor) };
    month = previousMonth(month);
    inner = undefined;
  }
  return { items, nextCursor: items.length >= limit ? encodeMonthCursor(month, null) : null };
}

const previousMonth = (yyyyMm: string) => {
  const [y, m] = yyyyMm.split("-").map(Number) as [number, number];
  return new Date(Date.UTC(y, m - 2, 1)).toISOString().slice(0, 7);
};

function encodeMonthCursor(month: string, inner: string | null): string {
  return Buffer.from(JSON.stringify({ m: month, c: inner })).toString("base64url");
}

function decodeMonthCursor(cursor: string | undefined): { month: string; inner: string | undefined } {
  if (!cursor) return { month: auditKeys.month(Date.now()), inner: undefined };
  try {
    const { m, c } = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as { m: unknown; c: unknown };
    if (typeof m === "string" && /^\d{4}-\d{2}$/.test(m) && (c === null || typeof c === "string")) {
      return { month: m, inner: c ?? undefined };
    }
  } catch {}
  // The store rejects it with the same 400 as any other foreign cursor.
  return { month: auditKeys.month(Date.now()), inner: cursor };
}

function toAuditLog(item: AuditItem): AuditLog {
  const { pk: _pk, sk: _sk, entity: _e, gsi1pk: _a, gsi1sk: _b, gsi2pk: _c, gsi2sk: _d, ...log } = item;
  return log;
}
