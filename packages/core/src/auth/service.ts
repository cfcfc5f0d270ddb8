import { recordAudit } from "../audit/service.ts";
import { ConditionFailedError, ConflictError, ForbiddenError, UnauthorizedError } from "../errors.ts";
import { newId } from "../ids.ts";
import { emptyCounts } from "../plans/entity.ts";
import type { Deps } from "../ports.ts";
import { closeUserSockets } from "../realtime/close.ts";
import { cond, type Key } from "../store/store.ts";
import { pad, type Role, toUser, type User, type UserItem, userKeys } from "../users/entity.ts";
import { assertNotLocked, clearFailures, recordFailure } from "./lockout.ts";
import { checkPasswordPolicy, decoyHash, hashPassword, needsRehash, verifyPassword } from "./password.ts";
import {
  type AccessClaims,
  blockAccessToken,
  issueTokens,
  revokeRefreshToken,
  rotateRefreshToken,
  type TokenPair,
} from "./tokens.ts";

export interface Session extends TokenPair {
  user: User;
}

export interface Caller {
  ip: string;
}

const INVALID_CREDENTIALS = "Invalid username/email or password";

export function newUserItem(
  fields: {
    username: string;
    email: string;
    role: Role;
    authType: UserItem["authType"];
    passwordHash?: string;
    githubId?: string;
    githubLogin?: string;
    plan?: string;
  },
  now = Date.now(),
): UserItem {
  const id = newId("usr");
  return {
    ...userKeys.user(id),
    entity: "user",
    id,
    disabled: false,
    createdAt: now,
    updatedAt: now,
    version: 1,
    gsi1pk: "USERS",
    gsi1sk: `${pad(now)}#${id}`,
    ...fields,
  };
}

/**
 * Writes a new user with its uniqueness guards in one transaction. The very
 * first user also claims the bootstrap item and becomes admin; if another
 * registration claimed it first, this one is a member.
 */
export async function createUser(
  deps: Pick<Deps, "store">,
  draft: Omit<UserItem, "role"> & { role?: Role },
): Promise<UserItem> {
  const guards = [
    { key: userKeys.email(draft.email), what: "email" },
    { key: userKeys.username(draft.username), what: "username" },
    ...(draft.githubId ? [{ key: userKeys.github(draft.githubId), what: "GitHub account" }] : []),
    ...(draft.oidcIssuer && draft.oidcSubject
      ? [{ key: userKeys.oidc(draft.oidcIssuer, draft.oidcSubject), what: "OpenID Connect account" }]
      : []),
  ];
  for (const asAdmin of [true, false]) {
    const user: UserItem = { ...draft, role: asAdmin ? "admin" : (draft.role ?? "member") };
    const ops = [
      { put: user, condition: cond.notExists() },
      ...guards.map((g) => ({ put: { ...g.key, entity: "guard", userId: user.id }, condition: cond.notExists() })),
      ...(asAdmin
        ? [{ put: { ...userKeys.bootstrap(), entity: "bootstrap", userId: user.id }, condition: cond.notExists() }]
        : []),
      // Counts from zero, so the user's first server or app needs no backfill (plans/counts.ts).
      { put: emptyCounts(user.id) },
    ];
    try {
      await deps.store.transact(ops);
      return user;
    } catch (err) {
      if (!(err instanceof ConditionFailedError)) throw err;
      const taken = err.failedIndexes.flatMap((i) => (i >= 1 && i <= guards.length ? [guards[i - 1]?.what] : []));
      if (taken.length > 0) throw new ConflictError(`That ${taken.join(" and ")} is already registered`);
      if (!asAdmin) throw err;
    }
  }
  throw new Error("unreachable");
}

/**
 * The account of an external identity (GitHub, OpenID Connect), under the
 * first free name of `usernames`. Sign-ups racing this one: the email taken
 * meanwhile → `emailTaken()`; the identity linked meanwhile → 409 (sign in
 * again); a username taken meanwhile → the next name. Audited `auth.register`.
 */
export async function signUpExternal(
  deps: Deps,
  caller: Caller,
  draft: UserItem,
  usernames: Iterable<string>,
  identity: { provider: string; key: Key; emailTaken(): Error; audit: Record<string, unknown> },
): Promise<Session> {
  for (const username of usernames) {
    if (await deps.store.get(userKeys.username(username))) continue;
    let user: UserItem;
    try {
      user = await createUser(deps, { ...draft, username });
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err;
      if (await deps.store.get(userKeys.email(draft.email))) throw identity.emailTaken();
      if (await deps.store.get(identity.key)) {
        throw new ConflictError(
          `This ${identity.provider} account was just linked to another Hoist account; sign in again`,
        );
      }
      continue; // The username went to someone else meanwhile.
    }
    return startSession(deps, caller, user, "auth.register", {
      ...identity.audit,
      username: user.username,
      role: user.role,
    });
  }
  throw new ConflictError(
    `No free username could be derived from your ${identity.provider} account; register with a password instead`,
  );
}

export async function register(
  deps: Deps,
  input: { username: string; email: string; password: string },
  caller: Caller,
): Promise<Session> {
  checkPasswordPolicy(input.password, input);
  const draft = newUserItem({
    username: input.username,
    email: input.email,
    role: "member",
    authType: "password",
    passwordHash: await hashPassword(input.password),
    plan: deps.config.plans.default,
  });
  const user = await createUser(deps, draft);
  await recordAudit(deps, {
    userId: user.id,
    action: "auth.register",
    resourceType: "user",
    resourceId: user.id,
    details: { username: user.username, role: user.role },
    ipAddress: caller.ip,
  });
  return { user: toUser(user), ...(await issueTokens(deps, user.id)) };
}

export async function findUserByLogin(deps: Pick<Deps, "store">, identifier: { username?: string; email?: string }) {
  const guardKey = identifier.email ? userKeys.email(identifier.email) : userKeys.username(identifier.username ?? "");
  const guard = await deps.store.get<{ pk: string; sk: string; userId: string }>(guardKey);
  return guard ? deps.store.get<UserItem>(userKeys.user(guard.userId)) : undefined;
}

export async function login(
  deps: Deps,
  input: { username?: string; email?: string; password: string },
  caller: Caller,
): Promise<Session> {
  const identifier = (input.email ?? input.username ?? "").toLowerCase();
  const user = await findUserByLogin(deps, input);
  const subject = user ? user.id : `ident:${identifier}`;
  await assertNotLocked(deps, subject);

  const ok = await verifyPassword(input.password, user?.passwordHash ?? (await decoyHash()));
  if (!user?.passwordHash || !ok) {
    await recordFailure(deps, subject);
    await recordAudit(deps, {
      userId: user?.id ?? null,
      action: "auth.login_failed",
      resourceType: "user",
      resourceId: user?.id ?? null,
      details: { identifier },
      ipAddress: caller.ip,
    });
    throw new UnauthorizedError(INVALID_CREDENTIALS);
  }
  if (user.disabled) throw new ForbiddenError("This account is disabled");
  await clearFailures(deps, subject);
  if (needsRehash(user.passwordHash)) {
    await deps.store.update(userKeys.user(user.id), { set: { passwordHash: await hashPassword(input.password) } });
  }
  return startSession(deps, caller, user, "auth.login", { method: "password" });
}

/** A signed-in user's session: the sign-in (or sign-up) audited, then a fresh token pair. */
export async function startSession(
  deps: Deps,
  caller: Caller,
  user: UserItem,
  action: "auth.login" | "auth.register",
  details: Record<string, unknown>,
): Promise<Session> {
  await recordAudit(deps, {
    userId: user.id,
    action,
    resourceType: "user",
    resourceId: user.id,
    details,
    ipAddress: caller.ip,
  });
  return { user: toUser(user), ...(await issueTokens(deps, user.id)) };
}

export async function refresh(deps: Deps, refreshToken: string, caller: Caller): Promise<Session> {
  const result = await rotateRefreshToken(deps, refreshToken);
  if (!result.ok) {
    if (result.reuse) {
      await recordAudit(deps, {
        userId: result.userId ?? null,
        action: "auth.token_reuse_detected",
        resourceType: "user",
        resourceId: result.userId ?? null,
        details: { familyRevoked: true },
        ipAddress: caller.ip,
      });
    }
    throw new UnauthorizedError(
      result.reuse ? "Refresh token reused; all sessions from it are revoked" : "Invalid refresh token",
    );
  }
  const user = await deps.store.get<UserItem>(userKeys.user(result.userId));
  if (!user || user.disabled) throw new UnauthorizedError("Account disabled");
  return { user: toUser(user), ...result.tokens };
}

export async function logout(
  deps: Deps,
  user: UserItem,
  claims: AccessClaims,
  refreshToken: string | undefined,
  caller: Caller,
): Promise<void> {
  await blockAccessToken(deps, claims);
  const revoked = refreshToken ? await revokeRefreshToken(deps, refreshToken, user.id) : false;
  // A socket authenticated once at connect: signing out must not leave it streaming.
  await closeUserSockets(deps, user.id, "Signed out");
  await recordAudit(deps, {
    userId: user.id,
    action: "auth.logout",
    resourceType: "user",
    resourceId: user.id,
    details: { refreshTokenRevoked: revoked },
    ipAddress: caller.ip,
  });
}
