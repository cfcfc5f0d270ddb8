import { createHash, randomBytes } from "node:crypto";
import { errors as joseErrors, jwtVerify, SignJWT } from "jose";
import { UnauthorizedError } from "../errors.ts";
import type { Deps } from "../ports.ts";
import { cond } from "../store/store.ts";
import { type UserItem, userKeys } from "../users/entity.ts";
import { type ApiTokenPrincipal, acceptApiToken, findApiToken, isApiToken, tokenUser } from "./api-tokens.ts";
import { authKeys, type FamilyItem, type RefreshItem } from "./entity.ts";
import { ALG } from "./keys.ts";

export const AUDIENCE = "hoist-api";
const CLOCK_TOLERANCE_SECONDS = 30;

export interface AccessClaims {
  sub: string;
  jti: string;
  exp: number;
}

export interface TokenPair {
  token: string;
  refreshToken: string;
  expiresIn: number;
}

type TokenDeps = Pick<Deps, "store" | "config" | "jwtKeys" | "keyVault">;

const sha256 = (value: string) => createHash("sha256").update(value).digest("base64url");
const seconds = (ms: number) => Math.floor(ms / 1000);

export async function signAccessToken(deps: TokenDeps, userId: string, now = Date.now()): Promise<string> {
  const { signing } = deps.jwtKeys;
  return new SignJWT({})
    .setProtectedHeader({ alg: ALG, kid: signing.kid, typ: "at+jwt" })
    .setIssuer(deps.config.auth.issuer)
    .setAudience(AUDIENCE)
    .setSubject(userId)
    .setJti(randomBytes(16).toString("base64url"))
    .setIssuedAt(seconds(now))
    .setExpirationTime(seconds(now) + deps.config.auth.accessTokenTtlSeconds)
    .sign(signing.key);
}

/** Verifies signature (by `kid`, EdDSA only), issuer, audience, expiry and the logout blocklist. */
export async function verifyAccessToken(
  deps: TokenDeps,
  token: string,
  opts: { skipBlocklist?: boolean } = {},
): Promise<AccessClaims> {
  let payload: { sub?: string; jti?: string; exp?: number };
  try {
    ({ payload } = await jwtVerify(
      token,
      async (header) => {
        const key = header.kid ? deps.jwtKeys.verifying.get(header.kid) : undefined;
        if (!key) throw new joseErrors.JWKSNoMatchingKey();
        return key;
      },
      {
        algorithms: [ALG],
        issuer: deps.config.auth.issuer,
        audience: AUDIENCE,
        typ: "at+jwt",
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ["sub", "jti", "exp"],
      },
    ));
  } catch (err) {
    const expired = err instanceof joseErrors.JWTExpired;
    throw new UnauthorizedError(expired ? "Access token expired" : "Invalid access token");
  }
  const claims = payload as AccessClaims;
  if (!opts.skipBlocklist && (await deps.store.get(authKeys.blockedJti(claims.jti)))) {
    throw new UnauthorizedError("Access token revoked");
  }
  return claims;
}

/** Who a request is: its user, and the sign-in token's claims or the API token it presented. */
export interface Authenticated {
  user: UserItem;
  claims?: AccessClaims;
  apiToken?: ApiTokenPrincipal;
}

/**
 * A verified access token (JWT) and its user, both current: the signature is
 * checked first, then the logout blocklist and the user are read in one round
 * trip (BatchGetItem, strongly consistent). A disabled or deleted user is
 * refused at once.
 */
export async function authenticateJwt(
  deps: TokenDeps,
  token: string,
): Promise<{ claims: AccessClaims; user: UserItem }> {
  const claims = await verifyAccessToken(deps, token, { skipBlocklist: true });
  const [blocked, user] = (await deps.store.batchGet([authKeys.blockedJti(claims.jti), userKeys.user(claims.sub)])) as [
    unknown,
    UserItem | undefined,
  ];
  if (blocked) throw new UnauthorizedError("Access token revoked");
  if (!user) throw new UnauthorizedError("Invalid access token");
  if (user.disabled) throw new UnauthorizedError("Account disabled");
  return { claims, user };
}

/**
 * A bearer token of either kind (the WebSocket's `?token=`): an access token
 * (JWT), or an API token (`hst_…`: its item by hash, then its user). A
 * token's `lastUsedAt` is written before this returns (at most once a minute):
 * the WebSocket Lambda, unlike the HTTP one, does not flush the usage meter
 * when it answers, and a connect is rare enough to wait for it.
 */
export async function authenticate(deps: TokenDeps & Pick<Deps, "usage">, token: string): Promise<Authenticated> {
  if (!isApiToken(token)) return authenticateJwt(deps, token);
  const item = await findApiToken(deps, token);
  const { user, apiToken, stamped } = acceptApiToken(deps, item, await tokenUser(deps, item));
  if (stamped) await deps.usage.flush();
  return { user, apiToken };
}

/** Blocks an access token until it would have expired anyway (logout). */
export async function blockAccessToken(deps: TokenDeps, claims: AccessClaims): Promise<void> {
  await deps.store.put({
    ...authKeys.blockedJti(claims.jti),
    entity: "blocked-jti",
    expiresAt: claims.exp + CLOCK_TOLERANCE_SECONDS,
  });
}

/** A new refresh token, in a new family (sign-in) or an existing one (rotation). */
async function refreshItem(deps: TokenDeps, userId: string, familyId: string, now: number) {
  const token = randomBytes(32).toString("base64url");
  const item: RefreshItem = {
    ...authKeys.refresh(sha256(token)),
    entity: "refresh-token",
    userId,
    familyId,
    createdAt: now,
    expiresAt: seconds(now) + deps.config.auth.refreshTokenTtlSeconds,
  };
  return { token, item };
}

export async function issueTokens(deps: TokenDeps, userId: string, now = Date.now()): Promise<TokenPair> {
  const familyId = randomBytes(16).toString("base64url");
  const family: FamilyItem = {
    ...authKeys.family(familyId),
    entity: "token-family",
    userId,
    createdAt: now,
    expiresAt: seconds(now) + deps.config.auth.refreshTokenTtlSeconds,
  };
  const refresh = await refreshItem(deps, userId, familyId, now);
  await deps.store.transact([{ put: family }, { put: refresh.item }]);
  return {
    token: await signAccessToken(deps, userId, now),
    refreshToken: refresh.token,
    expiresIn: deps.config.auth.accessTokenTtlSeconds,
  };
}

export type RotateResult =
  | { ok: true; userId: string; tokens: TokenPair }
  | { ok: false; reuse: boolean; userId?: string; familyId?: string };

/**
 * Spends a refresh token and issues the next pair in its family. A token that
 * was already spent means it was stolen or replayed: the whole family is
 * revoked (seed 002's reuse detection), so the thief's copy dies too.
 */
export async function rotateRefreshToken(
  deps: TokenDeps,
  refreshToken: string,
  now = Date.now(),
): Promise<RotateResult> {
  const key = authKeys.refresh(sha256(refreshToken));
  const current = await deps.store.get<RefreshItem>(key);
  if (!current) return { ok: false, reuse: false };
  const family = await deps.store.get<FamilyItem>(authKeys.family(current.familyId));
  if (!family || family.revokedAt) return { ok: false, reuse: false, userId: current.userId };

  const next = await refreshItem(deps, current.userId, current.familyId, now);
  const graceMs = deps.config.auth.refreshGraceSeconds * 1000;
  const sealed = graceMs > 0 ? await deps.keyVault.encrypt(next.token, { ownerId: current.userId }) : undefined;
  try {
    await deps.store.transact([
      {
        update: {
          ...key,
          set: { spentAt: now, ...(sealed ? { successor: sealed } : {}) },
          condition: cond.attrNotExists("spentAt"),
        },
      },
      { check: authKeys.family(current.familyId), condition: cond.attrNotExists("revokedAt") },
      { put: next.item },
    ]);
  } catch (err) {
    const reused = (err as { failedIndexes?: number[] }).failedIndexes?.includes(0) ?? false;
    if (!reused) return { ok: false, reuse: false, userId: current.userId };
    // Two tabs refreshing one token at once: the later one, within the grace window, gets the same successor.
    const spent = await deps.store.get<RefreshItem>(key, { consistent: true });
    if (spent?.successor && spent.spentAt !== undefined && now - spent.spentAt <= graceMs) {
      const refreshToken = await deps.keyVault.decrypt(spent.successor, { ownerId: current.userId });
      return { ok: true, userId: current.userId, tokens: await pairFor(deps, current.userId, refreshToken, now) };
    }
    await revokeFamily(deps, current.familyId, "reuse-detected", now);
    return { ok: false, reuse: true, userId: current.userId, familyId: current.familyId };
  }
  return { ok: true, userId: current.userId, tokens: await pairFor(deps, current.userId, next.token, now) };
}

async function pairFor(deps: TokenDeps, userId: string, refreshToken: string, now: number): Promise<TokenPair> {
  return {
    token: await signAccessToken(deps, userId, now),
    refreshToken,
    expiresIn: deps.config.auth.accessTokenTtlSeconds,
  };
}

export async function revokeFamily(deps: TokenDeps, familyId: string, reason: string, now = Date.now()): Promise<void> {
  await deps.store
    .update(authKeys.family(familyId), { set: { revokedAt: now, revokedReason: reason }, condition: cond.exists() })
    .catch(() => undefined);
}

/** Logout: revokes the refresh token's family, if the token is the caller's. */
export async function revokeRefreshToken(deps: TokenDeps, refreshToken: string, userId: string): Promise<boolean> {
  const current = await deps.store.get<RefreshItem>(authKeys.refresh(sha256(refreshToken)));
  if (!current || current.userId !== userId) return false;
  await revokeFamily(deps, current.familyId, "logout");
  return true;
}
