import { createHash } from "node:crypto";
import type { Actor } from "../actor.ts";
import { auditItem } from "../audit/service.ts";
import { ConditionFailedError, ForbiddenError, NotFoundError, UnauthorizedError } from "../errors.ts";
import { newId, newToken } from "../ids.ts";
import type { Deps } from "../ports.ts";
import { cond } from "../store/store.ts";
import { type UserItem, userKeys } from "../users/entity.ts";
import {
  type ApiToken,
  type ApiTokenItem,
  type ApiTokenRefItem,
  apiTokenKeys,
  SCOPES,
  type Scope,
  toApiToken,
} from "./api-token-entity.ts";
import { grantedScopes } from "./scopes.ts";

const PREFIX = "hst_";
/** `hst_` + 256 random bits, base64url (43 characters). */
const FORMAT = /^hst_[A-Za-z0-9_-]{43}$/;
/** `lastUsedAt` is written at most this often per token. */
export const LAST_USED_EVERY_MS = 60_000;
const DAY_MS = 86_400_000;

/** The credential of a request made with an API token. */
export interface ApiTokenPrincipal {
  id: string;
  scopes: Scope[];
  /** What its scopes grant its user now (auth/scopes.ts). */
  granted: Set<Scope>;
}

export const isApiToken = (token: string) => token.startsWith(PREFIX);

/** Only this is stored: the SHA-256 of the whole secret. 256 random bits need no salt or slow hash. */
const hashOf = (secret: string) => createHash("sha256").update(secret).digest("base64url");

/**
 * The token's item, by the hash of the secret: one strongly consistent
 * GetItem, so a token revoked (deleted) a moment ago is refused. Expired
 * items are absent (the Store hides passed TTLs).
 */
export async function findApiToken(deps: Pick<Deps, "store">, secret: string): Promise<ApiTokenItem> {
  if (!FORMAT.test(secret)) throw new UnauthorizedError("Invalid API token");
  const item = await deps.store.get<ApiTokenItem>(apiTokenKeys.secret(hashOf(secret)), { consistent: true });
  if (!item) throw new UnauthorizedError("Invalid, expired or revoked API token");
  return item;
}

/**
 * The token's user, read now: a disabled or deleted user is refused. The use
 * is stamped (`lastUsedAt`) in the background by the usage meter, at most once
 * a minute; `stamped` says whether this use was.
 */
export function acceptApiToken(
  deps: Pick<Deps, "usage">,
  item: ApiTokenItem,
  user: UserItem | undefined,
  now = Date.now(),
): { user: UserItem; apiToken: ApiTokenPrincipal; stamped: boolean } {
  if (!user) throw new UnauthorizedError("Invalid API token");
  if (user.disabled) throw new UnauthorizedError("Account disabled");
  const stamped = item.lastUsedAt === undefined || now - item.lastUsedAt >= LAST_USED_EVERY_MS;
  if (stamped) deps.usage.stamp({ pk: item.pk, sk: item.sk }, "lastUsedAt", now, LAST_USED_EVERY_MS);
  const apiToken = { id: item.id, scopes: item.scopes, granted: grantedScopes(item.scopes, user.role) };
  return { user, apiToken, stamped };
}

export async function tokenUser(deps: Pick<Deps, "store">, item: ApiTokenItem): Promise<UserItem | undefined> {
  return deps.store.get<UserItem>(userKeys.user(item.userId), { consistent: true });
}

export interface NewApiToken {
  name: string;
  scopes: Scope[];
  expiresInDays?: number;
}

/**
 * Mints a token. The secret is answered here once; only its hash is kept.
 * Nobody grants more than they hold: `admin` only by an admin (and, from an
 * API token, only scopes that token has).
 */
export async function createApiToken(
  deps: Pick<Deps, "store">,
  actor: Actor,
  creator: { role: UserItem["role"]; apiToken?: ApiTokenPrincipal },
  input: NewApiToken,
  now = Date.now(),
): Promise<Omit<ApiToken, "lastUsedAt"> & { token: string }> {
  const scopes = SCOPES.filter((s) => input.scopes.includes(s));
  const mayGrant = creator.apiToken?.granted ?? grantedScopes(["admin"], creator.role);
  for (const scope of scopes) {
    if (mayGrant.has(scope)) continue;
    throw new ForbiddenError(
      scope === "admin" && creator.role !== "admin"
        ? 'Only admins may grant the "admin" scope'
        : `This API token lacks the "${scope}" scope, so it cannot grant it`,
    );
  }
  const secret = `${PREFIX}${newToken()}`;
  const tokenHash = hashOf(secret);
  const id = newId("tok");
  const expiresAt =
    input.expiresInDays === undefined ? undefined : Math.floor((now + input.expiresInDays * DAY_MS) / 1000);
  const item: ApiTokenItem = {
    ...apiTokenKeys.secret(tokenHash),
    entity: "api-token",
    id,
    userId: actor.userId,
    name: input.name,
    scopes,
    createdAt: now,
    ...(expiresAt === undefined ? {} : { expiresAt }),
    ...apiTokenKeys.list(actor.userId, now, id),
  };
  const ref: ApiTokenRefItem = {
    ...apiTokenKeys.ref(actor.userId, id),
    entity: "api-token-ref",
    id,
    name: input.name,
    tokenHash,
    ...(expiresAt === undefined ? {} : { expiresAt }),
  };
  await deps.store.transact([
    { put: item, condition: cond.notExists() },
    { put: ref, condition: cond.notExists() },
    {
      put: auditItem(
        {
          userId: actor.userId,
          action: "token.create",
          resourceType: "api-token",
          resourceId: id,
          details: { name: input.name, scopes, expiresAt: expiresAt === undefined ? null : expiresAt * 1000 },
          ipAddress: actor.ip,
        },
        now,
      ),
    },
  ]);
  const { lastUsedAt: _never, ...created } = toApiToken(item);
  return { ...created, token: secret };
}

/** The user's tokens, oldest first (expired ones are gone). */
export async function listApiTokens(deps: Pick<Deps, "store">, userId: string, limit: number, cursor?: string) {
  const page = await deps.store.query<ApiTokenItem>({
    index: apiTokenKeys.listIndex,
    pk: apiTokenKeys.listPk(userId),
    limit,
    cursor,
  });
  return { items: page.items.map(toApiToken), nextCursor: page.nextCursor };
}

/** Deletes the token at once (its next request is a 401), with its audit entry, in one transaction. */
export async function revokeApiToken(deps: Pick<Deps, "store">, actor: Actor, id: string): Promise<void> {
  const refKey = apiTokenKeys.ref(actor.userId, id);
  const ref = await deps.store.get<ApiTokenRefItem>(refKey);
  if (!ref) throw new NotFoundError("API token");
  try {
    await deps.store.transact([
      { delete: refKey, condition: cond.exists() },
      { delete: apiTokenKeys.secret(ref.tokenHash) },
      {
        put: auditItem({
          userId: actor.userId,
          action: "token.revoke",
          resourceType: "api-token",
          resourceId: id,
          details: { name: ref.name },
          ipAddress: actor.ip,
        }),
      },
    ]);
  } catch (err) {
    // Revoked meanwhile by another request.
    if (err instanceof ConditionFailedError) throw new NotFoundError("API token");
    throw err;
  }
}
