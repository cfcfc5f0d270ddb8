import type { Key } from "./store/store.ts";
import { pad } from "./users/entity.ts";

/**
 * Keys of what a user owns. Tenancy is in the key: every owned item lives
 * under `OWNER#<userId>`, so another user's id is simply not found.
 */
export type OwnedKind = "SERVER" | "PROJECT" | "APP";

export const owned = {
  key: (ownerId: string, kind: OwnedKind, id: string): Key => ({ pk: `OWNER#${ownerId}`, sk: `${kind}#${id}` }),
  /** gsi1: a user's items of one kind, oldest first. */
  list: (ownerId: string, kind: OwnedKind, createdAt: number, id: string) => ({
    gsi1pk: `OWNER#${ownerId}#${kind}S`,
    gsi1sk: `${pad(createdAt)}#${id}`,
  }),
  listPk: (ownerId: string, kind: OwnedKind) => `OWNER#${ownerId}#${kind}S`,
  /** A consistent Query of a user's items of one kind (the table, not gsi1): with sk `beginsWith`. */
  all: (ownerId: string, kind: OwnedKind) => ({ pk: `OWNER#${ownerId}`, sk: { beginsWith: `${kind}#` } }),
};
