import type { Key } from "../store/store.ts";
import { pad } from "../users/entity.ts";

export const SCOPES = ["read", "deploy", "write", "admin"] as const;
export type Scope = (typeof SCOPES)[number];

/**
 * An API token, keyed by the SHA-256 of its secret: the one item a request
 * presenting `hst_…` reads (a strongly consistent GetItem), so a revoked
 * (deleted) token fails on the very next request. It carries its owner, so
 * the owner and the owner's rate window are read together next. Listed by
 * owner on gsi1, oldest first. `expiresAt` is the TTL (seconds), when the token expires.
 */
export type ApiTokenItem = Key & {
  entity: "api-token";
  id: string;
  userId: string;
  name: string;
  scopes: Scope[];
  createdAt: number;
  /** Written in the background by the usage meter, at most once a minute. */
  lastUsedAt?: number;
  expiresAt?: number;
  gsi1pk: string;
  gsi1sk: string;
};

/** The owner's handle on a token, by id (DELETE /api/tokens/:id): where its secret item is. */
export type ApiTokenRefItem = Key & {
  entity: "api-token-ref";
  id: string;
  name: string;
  tokenHash: string;
  expiresAt?: number;
};

export const apiTokenKeys = {
  secret: (tokenHash: string): Key => ({ pk: `APITOKEN#${tokenHash}`, sk: "APITOKEN" }),
  /** Under the owner's partition: another user's token id is simply not found. */
  ref: (userId: string, id: string): Key => ({ pk: `OWNER#${userId}`, sk: `APITOKEN#${id}` }),
  list: (userId: string, createdAt: number, id: string) => ({
    gsi1pk: apiTokenKeys.listPk(userId),
    gsi1sk: `${pad(createdAt)}#${id}`,
  }),
  listPk: (userId: string) => `OWNER#${userId}#APITOKENS`,
  listIndex: "gsi1" as const,
};

/** The public shape (API.md § Auth): never the secret or its hash. */
export interface ApiToken {
  id: string;
  name: string;
  scopes: Scope[];
  createdAt: number;
  lastUsedAt: number | null;
  expiresAt: number | null;
}

export const toApiToken = (item: ApiTokenItem): ApiToken => ({
  id: item.id,
  name: item.name,
  scopes: item.scopes,
  createdAt: item.createdAt,
  lastUsedAt: item.lastUsedAt ?? null,
  expiresAt: item.expiresAt === undefined ? null : item.expiresAt * 1000,
});
