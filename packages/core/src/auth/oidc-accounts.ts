import { randomBytes } from "node:crypto";
import { auditItem, recordAudit } from "../audit/service.ts";
import { ConditionFailedError, ConflictError, ForbiddenError, HoistError, UnauthorizedError } from "../errors.ts";
import type { Deps } from "../ports.ts";
import { cond, type Key, type TransactOp } from "../store/store.ts";
import { toUser, type User, type UserItem, userKeys } from "../users/entity.ts";
import { Email, Username } from "../users/schemas.ts";
import {
  type OAuthFlow,
  type OAuthOutcome,
  oauthCallbackUrl,
  putOAuthState,
  s256,
  takeOAuthState,
} from "./oauth-state.ts";
import { type OidcIdentity, oidcClient, oidcSettings } from "./oidc.ts";
import { type Caller, newUserItem, type Session, signUpExternal, startSession } from "./service.ts";

/**
 * Sign-in, sign-up and account linking with the OpenID Connect provider. The
 * identity is (issuer, `sub`), guarded by its own item as a GitHub account is;
 * an account is never found or linked by its email: an identity whose email
 * belongs to an account already is refused (sign in, then link from there).
 */
type GuardItem = Key & { entity: "guard"; userId: string };

const trimSlash = (url: string) => url.replace(/\/+$/, "");
const displayName = async (deps: Pick<Deps, "config" | "readOidcSettings">) =>
  (await oidcSettings(deps))?.name ?? "OpenID Connect";

/** Stores a fresh state (PKCE verifier, nonce, browser binding) and answers the provider's authorize URL. */
export async function startOidcAuth(
  deps: Pick<Deps, "store" | "config">,
  flow: OAuthFlow,
  requestOrigin: string,
  now = Date.now(),
): Promise<{ authorizeUrl: string; browserNonce: string }> {
  const client = oidcClient(await oidcSettings(deps));
  await client.metadata(); // A provider that cannot be discovered fails here, before any state is stored.
  const redirectUri = oauthCallbackUrl(deps.config, requestOrigin, "oidc");
  const { state, codeVerifier, nonce, browserNonce } = await putOAuthState(deps, "oidc", flow, redirectUri, now);
  const authorizeUrl = await client.authorizeUrl({
    redirectUri,
    state,
    nonce: nonce ?? "",
    codeChallenge: s256(codeVerifier),
  });
  return { authorizeUrl, browserNonce };
}

/**
 * The provider's redirect back: the state is consumed and the browser checked (oauth-state.ts), the code
 * exchanged, the ID token verified; then the identity signs in, signs up, or is linked to the flow's user.
 */
export async function completeOidcAuth(
  deps: Deps,
  input: { code?: string; state: string; error?: string; iss?: string; browserNonce?: string },
  caller: Caller,
  now = Date.now(),
): Promise<OAuthOutcome> {
  const client = oidcClient(await oidcSettings(deps));
  const flow = await takeOAuthState(deps, "oidc", input, caller, now);
  if (input.error || !input.code) {
    const detail =
      input.error === "access_denied"
        ? `The sign-in at ${client.name} was declined; nothing was changed`
        : `${client.name} did not authorize the request (${input.error ?? "no code"})`;
    throw new HoistError(400, "oidc_refused", detail);
  }
  // RFC 9207: a response naming another issuer was meant for another provider (a mix-up attack).
  if (input.iss !== undefined && trimSlash(input.iss) !== trimSlash((await client.metadata()).issuer)) {
    throw new HoistError(
      400,
      "oidc_refused",
      `The authorization response came from another issuer than ${client.name}`,
    );
  }
  const tokens = await client.exchangeCode({
    code: input.code,
    redirectUri: flow.redirectUri,
    codeVerifier: flow.codeVerifier,
  });
  let identity: OidcIdentity;
  try {
    identity = await client.verifyIdToken(tokens.idToken, flow.nonce ?? "");
  } catch (err) {
    if (err instanceof HoistError && err.code === "oidc_invalid_id_token") {
      await recordAudit(deps, {
        userId: flow.userId ?? null,
        action: "auth.login_failed",
        resourceType: "user",
        resourceId: flow.userId ?? null,
        details: { method: "oidc", mode: flow.mode, reason: err.message },
        ipAddress: caller.ip,
      });
    }
    throw err;
  }
  if (flow.mode === "link") return { mode: "link", user: await linkOidc(deps, flow.userId, identity, caller) };
  const guard = await deps.store.get<GuardItem>(userKeys.oidc(identity.issuer, identity.subject));
  if (guard) return { mode: "login", created: false, session: await signIn(deps, guard.userId, identity, caller) };
  const claims =
    identity.email === undefined && tokens.accessToken
      ? { ...identity, ...(await client.userinfo(tokens.accessToken, identity.subject)) }
      : identity;
  return { mode: "login", created: true, session: await signUp(deps, claims, caller) };
}

/** The identity is linked already: sign that account in. */
async function signIn(deps: Deps, userId: string, identity: OidcIdentity, caller: Caller): Promise<Session> {
  const name = await displayName(deps);
  const user = await deps.store.get<UserItem>(userKeys.user(userId), { consistent: true });
  if (!user) throw new ConflictError(`The account linked to this ${name} account no longer exists`);
  if (user.disabled) throw new ForbiddenError("This account is disabled");
  if (user.oidcIssuer !== identity.issuer || user.oidcSubject !== identity.subject) {
    throw new ConflictError(`${name} was unlinked from this account meanwhile`);
  }
  return startSession(deps, caller, user, "auth.login", { method: "oidc", issuer: identity.issuer });
}

/**
 * A new account from the identity. Its email must be there and not marked unverified (a provider that
 * says nothing about it is trusted: the operator chose it); one registered already is refused.
 */
async function signUp(deps: Deps, identity: OidcIdentity, caller: Caller): Promise<Session> {
  const name = await displayName(deps);
  const email = identity.email;
  if (!email || identity.emailVerified === false || !Email.safeParse(email).success) {
    throw new HoistError(
      400,
      "oidc_no_email",
      `Your ${name} account has no verified email address; verify one there, or register with a password and link ${name}`,
    );
  }
  const emailTaken = () =>
    new ConflictError(`An account with this email exists; sign in to it and link ${name} from there`);
  if (await deps.store.get(userKeys.email(email))) throw emailTaken();
  const draft: UserItem = {
    ...newUserItem({ username: "", email, role: "member", authType: "oidc", plan: deps.config.plans.default }),
    oidcIssuer: identity.issuer,
    oidcSubject: identity.subject,
  };
  return signUpExternal(deps, caller, draft, usernameCandidates(identity), {
    provider: name,
    key: userKeys.oidc(identity.issuer, identity.subject),
    emailTaken,
    audit: { method: "oidc", issuer: identity.issuer },
  });
}

/**
 * From `preferred_username` (its local part if it is an address), else the email's local part, else the
 * name: as it is if free and valid, then with `-2`, `-3`, … and finally random suffixes.
 */
export function* usernameCandidates(identity: Pick<OidcIdentity, "preferredUsername" | "email" | "name">) {
  const localPart = (s: string | undefined) => s?.split("@")[0] || undefined;
  const tidy = (s: string) => s.replace(/[^A-Za-z0-9_.-]+/g, "-").replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, "");
  let base = tidy(localPart(identity.preferredUsername) ?? localPart(identity.email) ?? identity.name ?? "");
  if (base.length < 3) base = base ? `${base}-user` : "user";
  const withSuffix = (suffix: string) => `${tidy(base.slice(0, 39 - suffix.length))}${suffix}`;
  const all = [
    withSuffix(""),
    ...Array.from({ length: 19 }, (_, i) => withSuffix(`-${i + 2}`)),
    ...Array.from({ length: 3 }, () => withSuffix(`-${randomBytes(3).toString("hex")}`)),
  ];
  for (const name of all) if (Username.safeParse(name).success) yield name;
}

/** Links the identity to the account that started the flow: guard, user and audit entry in one transaction. */
async function linkOidc(deps: Deps, userId: string | undefined, identity: OidcIdentity, caller: Caller): Promise<User> {
  const name = await displayName(deps);
  const user = userId ? await deps.store.get<UserItem>(userKeys.user(userId), { consistent: true }) : undefined;
  if (!user) throw new UnauthorizedError("The account that started linking no longer exists");
  if (user.disabled) throw new ForbiddenError("This account is disabled");
  const { issuer, subject } = identity;
  const previous = user.oidcIssuer && user.oidcSubject ? { issuer: user.oidcIssuer, subject: user.oidcSubject } : null;
  const replaced = previous && (previous.issuer !== issuer || previous.subject !== subject) ? previous : null;
  const set = { oidcIssuer: issuer, oidcSubject: subject, updatedAt: Date.now(), version: user.version + 1 };
  const ops: TransactOp[] = [
    {
      put: { ...userKeys.oidc(issuer, subject), entity: "guard", userId: user.id },
      condition: cond.or(cond.attrNotExists("pk"), cond.eq("userId", user.id)),
    },
    { update: { ...userKeys.user(user.id), set, condition: cond.eq("version", user.version) } },
    ...(replaced
      ? [{ delete: userKeys.oidc(replaced.issuer, replaced.subject), condition: cond.eq("userId", user.id) }]
      : []),
    {
      put: auditItem({
        userId: user.id,
        action: "auth.oidc_linked",
        resourceType: "user",
        resourceId: user.id,
        details: { issuer, subject, ...(replaced ? { replacedSubject: replaced.subject } : {}) },
        ipAddress: caller.ip,
      }),
    },
  ];
  try {
    await deps.store.transact(ops);
  } catch (err) {
    if (!(err instanceof ConditionFailedError)) throw err;
    if (err.failedIndexes.includes(0)) {
      throw new ConflictError(`This ${name} account is already linked to another Hoist account`);
    }
    throw new ConflictError("Your account changed meanwhile; try linking again");
  }
  return toUser({ ...user, ...set });
}

/**
 * Removes the link; refused when the account would be left without a way to sign in (no password and
 * no GitHub account linked).
 */
export async function unlinkOidc(deps: Deps, user: UserItem, caller: Caller): Promise<User> {
  const name = await displayName(deps);
  const { oidcIssuer: issuer, oidcSubject: subject } = user;
  if (!issuer || !subject) throw new ConflictError(`No ${name} account is linked to this account`);
  if (!user.passwordHash && !user.githubId) {
    throw new ConflictError(`This account signs in only with ${name} and has no password; unlinking would lock it out`);
  }
  const now = Date.now();
  try {
    await deps.store.transact([
      {
        update: {
          ...userKeys.user(user.id),
          set: { updatedAt: now, version: user.version + 1 },
          remove: ["oidcIssuer", "oidcSubject"],
          condition: cond.eq("version", user.version),
        },
      },
      {
        delete: userKeys.oidc(issuer, subject),
        condition: cond.or(cond.attrNotExists("pk"), cond.eq("userId", user.id)),
      },
      {
        put: auditItem({
          userId: user.id,
          action: "auth.oidc_unlinked",
          resourceType: "user",
          resourceId: user.id,
          details: { issuer, subject },
          ipAddress: caller.ip,
        }),
      },
    ]);
  } catch (err) {
    if (err instanceof ConditionFailedError) throw new ConflictError("Your account changed meanwhile; try again");
    throw err;
  }
  const { oidcIssuer: _issuer, oidcSubject: _subject, ...rest } = user;
  return toUser({ ...rest, updatedAt: now, version: user.version + 1 });
}
