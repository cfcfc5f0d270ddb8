import { createHash } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import { ConditionFailedError, ConflictError, ValidationError } from "../../errors.ts";
import { cond, type Key } from "../../store/store.ts";
import type { AppEnv } from "../env.ts";

const DAY_SECONDS = 24 * 60 * 60;
/** A claim whose request never answered (the process died) frees its key after this, not after a day. */
const PENDING_SECONDS = 60;

type IdemItem = Key & {
  entity: "idempotency";
  state: "pending" | "done";
  status?: number;
  body?: string;
  contentType?: string;
  fingerprint: string;
  expiresAt: number;
};

/** One key per user, route and client key (hashed: the client's key may be anything printable). */
export function idempotencyKey(userId: string, method: string, path: string, key: string): Key {
  const scope = createHash("sha256").update(`${userId}\n${method} ${path}\n${key}`).digest("base64url");
  return { pk: `IDEM#${scope}`, sk: "IDEM" };
}

/**
 * `Idempotency-Key` on POSTs that create or trigger work: the same key (per
 * user and route) within 24 h answers the first response again instead of
 * doing the work twice. A repeat while the first is still in flight → 409; the
 * same key with a different body → 400. Failures (5xx) are not remembered,
 * and a claim left `pending` by a crash expires within a minute.
 * Runs after `requireUser`.
 */
export const idempotent: MiddlewareHandler<AppEnv> = async (c, next) => {
  const key = c.req.header("idempotency-key");
  if (key === undefined) return next();
  if (!/^[\x21-\x7e]{1,255}$/.test(key)) {
    throw new ValidationError("Invalid Idempotency-Key", [
      { path: "header.idempotency-key", message: "1-255 visible ASCII characters" },
    ]);
  }
  const store = c.var.deps.store;
  const itemKey = idempotencyKey(c.var.user.id, c.req.method, c.req.path, key);
  const fingerprint = createHash("sha256")
    .update(await c.req.raw.clone().text())
    .digest("base64url");
  try {
    await store.put(
      {
        ...itemKey,
        entity: "idempotency",
        state: "pending",
        fingerprint,
        expiresAt: Math.floor(Date.now() / 1000) + PENDING_SECONDS,
      } satisfies IdemItem,
      { condition: cond.notExists() },
    );
  } catch (err) {
    if (!(err instanceof ConditionFailedError)) throw err;
    const first = await store.get<IdemItem>(itemKey);
    if (first?.fingerprint !== fingerprint)
      throw new ValidationError("This Idempotency-Key was used with another request body");
    if (first.state !== "done") throw new ConflictError("A request with this Idempotency-Key is still in progress");
    c.header("Idempotent-Replayed", "true");
    return c.body(first.body ?? "", (first.status ?? 200) as 200, {
      "Content-Type": first.contentType ?? "application/json",
    });
  }
  try {
    await next();
  } catch (err) {
    await store.delete(itemKey);
    throw err;
  }
  if (c.res.status >= 500 || c.error) {
    await store.delete(itemKey);
    return;
  }
  await store.update(itemKey, {
    set: {
      state: "done",
      status: c.res.status,
      body: await c.res.clone().text(),
      contentType: c.res.headers.get("content-type") ?? "application/json",
      expiresAt: Math.floor(Date.now() / 1000) + DAY_SECONDS,
    },
  });
};
