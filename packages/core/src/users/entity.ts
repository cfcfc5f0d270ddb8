import type { Key } from "../store/store.ts";

export type Role = "admin" | "member";
export type AuthType = "password" | "github" | "oidc";

export type UserItem = Key & {
  entity: "user";
  id: string;
  username: string;
  email: string;
  role: Role;
  disabled: boolean;
  authType: AuthType;
  passwordHash?: string;
  githubId?: string;
  githubLogin?: string;
  /** The GitHub OAuth token, sealed by the KeyVault with `{ ownerId }` as context. */
  githubToken?: string;
  /** The linked OpenID Connect identity: the provider's issuer and the user's `sub` there (guarded by `userKeys.oidc`). */
  oidcIssuer?: string;
  oidcSubject?: string;
  /** The user's plan (plans/plans.ts); none recorded: the configured default. */
  plan?: string;
  createdAt: number;
  updatedAt: number;
  version: number;
  gsi1pk: "USERS";
  gsi1sk: string;
};

/** The public shape (API.md § Auth): never hashes or tokens. */
export interface User {
  id: string;
  username: string;
  email: string;
  role: Role;
  disabled: boolean;
  githubConnected: boolean;
  oidcConnected: boolean;
  authType: AuthType;
  /** The user's plan; null: the operator's default plan. */
  plan: string | null;
  createdAt: number;
}

export const pad = (ms: number) => String(ms).padStart(13, "0");

export const userKeys = {
  user: (id: string): Key => ({ pk: `USER#${id}`, sk: "USER" }),
  email: (email: string): Key => ({ pk: `EMAIL#${email.toLowerCase()}`, sk: "GUARD" }),
  username: (username: string): Key => ({ pk: `USERNAME#${username.toLowerCase()}`, sk: "GUARD" }),
  github: (githubId: string): Key => ({ pk: `GITHUB#${githubId}`, sk: "GUARD" }),
  /** One OpenID Connect identity: an issuer has no `#` (no fragment), so the key is unambiguous. */
  oidc: (issuer: string, subject: string): Key => ({ pk: `OIDC#${issuer}#${subject}`, sk: "GUARD" }),
  /** Claimed by the very first registration: that user is the admin. */
  bootstrap: (): Key => ({ pk: "META", sk: "BOOTSTRAP" }),
  listIndex: "gsi1" as const,
  listPk: "USERS",
};

export function toUser(item: UserItem): User {
  return {
    id: item.id,
    username: item.username,
    email: item.email,
    role: item.role,
    disabled: item.disabled,
    githubConnected: item.githubId !== undefined,
    oidcConnected: item.oidcSubject !== undefined,
    authType: item.authType,
    plan: item.plan ?? null,
    createdAt: item.createdAt,
  };
}
