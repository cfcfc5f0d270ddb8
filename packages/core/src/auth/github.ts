import { randomBytes } from "node:crypto";
import { z } from "zod";
import { recordAudit } from "../audit/service.ts";
import type { Config } from "../config.ts";
import {
  ConditionFailedError,
  ConflictError,
  ForbiddenError,
  HoistError,
  NotConfiguredError,
  UnauthorizedError,
} from "../errors.ts";
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
import { type Caller, newUserItem, signUpExternal, startSession } from "./service.ts";

/**
 * GitHub OAuth (authorization code + PKCE S256) for sign-in, sign-up and
 * account linking. The state, single use and bound to the browser that
 * started the flow, is kept by oauth-state.ts; the GitHub token is sealed by
 * the KeyVault with the owner's id as context.
 */
export const GITHUB_SCOPES = "read:user user:email repo admin:repo_hook";
export { OAUTH_COOKIE, OAUTH_COOKIE_MAX_AGE, type OAuthStateItem } from "./oauth-state.ts";

const DEFAULT_TIMEOUT_MS = 10_000;

type GuardItem = Key & { entity: "guard"; userId: string };

export type GitHubProfile = { id: number; login: string; email?: string | null };

const githubUnavailable = (detail: string) => new HoistError(502, "github_unavailable", detail);
const emailTaken = () => new ConflictError("An account with this email exists; sign in and link GitHub from it");
const trimSlash = (url: string) => url.replace(/\/+$/, "");

const TokenAnswer = z.object({
  access_token: z.string().min(1).max(4096).optional(),
  error: z.string().max(200).optional(),
  error_description: z.string().max(2000).optional(),
});
const ProfileAnswer = z.object({
  id: z.number().int().positive(),
  login: z.string().min(1).max(100),
  email: z.string().max(320).nullish(),
});
const EmailsAnswer = z.array(z.object({ email: z.string().max(320), primary: z.boolean(), verified: z.boolean() }));

/** The few GitHub calls sign-in needs, over fetch, with a timeout on each and errors a caller can act on. */
export class GitHubClient {
  private readonly url: string;
  private readonly apiUrl: string;
  private readonly timeoutMs: number;
  private readonly fetch: typeof fetch;

  constructor(opts: { url: string; apiUrl: string; timeoutMs?: number; fetch?: typeof fetch }) {
    this.url = trimSlash(opts.url);
    this.apiUrl = trimSlash(opts.apiUrl);
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.fetch = opts.fetch ?? fetch;
  }

  static fromConfig(config: Config): GitHubClient {
    return new GitHubClient({ url: config.github.url, apiUrl: config.github.apiUrl });
  }

  authorizeUrl(p: { clientId: string; redirectUri: string; state: string; codeChallenge: string }): string {
    const query = new URLSearchParams({
      client_id: p.clientId,
      redirect_uri: p.redirectUri,
      state: p.state,
      scope: GITHUB_SCOPES,
      code_challenge: p.codeChallenge,
      code_challenge_method: "S256",
    });
    return `${this.url}/login/oauth/authorize?${query}`;
  }

  /** Trades the code for an access token. GitHub answers 200 with `{error}` when it refuses: that is a 400. */
  async exchangeCode(p: {
    clientId: string;
    clientSecret: string;
    code: string;
    redirectUri: string;
    codeVerifier: string;
  }): Promise<string> {
    const body = new URLSearchParams({
      client_id: p.clientId,
      client_secret: p.clientSecret,
      code: p.code,
      redirect_uri: p.redirectUri,
      code_verifier: p.codeVerifier,
    });
    const answer = await this.call("the code exchange", `${this.url}/login/oauth/access_token`, TokenAnswer, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body,
    });
    if (answer.access_token) return answer.access_token;
    const error = answer.error ?? "no access token";
    if (error === "incorrect_client_credentials" || error === "redirect_uri_mismatch") {
      // Hoist's OAuth app is misconfigured: not the caller's fault.
      throw githubUnavailable(
        `GitHub rejected Hoist's OAuth app settings (${error}); check the client id, secret and callback URL`,
      );
    }
    const why = (answer.error_description ?? error).slice(0, 200);
    throw new HoistError(400, "github_oauth", `GitHub refused the authorization code: ${why}`);
  }

  user(token: string): Promise<GitHubProfile> {
    return this.call("the user profile request", `${this.apiUrl}/user`, ProfileAnswer, { headers: bearer(token) });
  }

  /** The primary address, if GitHub has verified it. */
  async primaryEmail(token: string): Promise<string | undefined> {
    const emails = await this.call("the email request", `${this.apiUrl}/user/emails`, EmailsAnswer, {
      headers: bearer(token),
    });
    return emails.find((e) => e.primary && e.verified)?.email;
  }

  private async call<T>(what: string, url: string, schema: z.ZodType<T>, init: RequestInit): Promise<T> {
    const timeout = () => githubUnavailable(`GitHub did not answer ${what} within ${this.timeoutMs / 1000} s`);
    const isTimeout = (err: unknown) =>
      err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");
    let res: Response;
    try {
      res = await this.fetch(url, {
        ...init,
        headers: { Accept: "application/json", "User-Agent": "hoist", ...init.headers },
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw isTimeout(err) ? timeout() : githubUnavailable(`Could not reach GitHub for ${what}`);
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      throw githubUnavailable(`GitHub answered ${what} with HTTP ${res.status}`);
    }
    let body: unknown;
    try {
      body = await res.json();
    } catch (err) {
      throw isTimeout(err) ? timeout() : githubUnavailable(`GitHub's answer to ${what} was not JSON`);
    }
    const parsed = schema.safeParse(body);
    if (!parsed.success) throw githubUnavailable(`GitHub's answer to ${what} did not have the expected shape`);
    return parsed.data;
  }
}

const bearer = (token: string) => ({
  Authorization: `Bearer ${token}`,
  Accept: "application/vnd.github+json",
  "X-GitHub-Api-Version": "2022-11-28",
});

function oauthApp(config: Config): { clientId: string; clientSecret: string } {
  const { clientId, clientSecret } = config.github;
  if (!clientId || !clientSecret) throw new NotConfiguredError("GitHub sign-in is not configured");
  return { clientId, clientSecret };
}

/** Where GitHub sends the browser back: the public URL if configured, else the origin the request came to. */
export const callbackUrl = (config: Config, requestOrigin: string) => oauthCallbackUrl(config, requestOrigin, "github");

export type GitHubFlow = OAuthFlow;

/**
 * Stores a fresh state (10 minutes, single use) with its PKCE verifier and the hash of a new browser
 * nonce; returns GitHub's authorize URL and the nonce, which the caller sets as the `hoist_oauth` cookie.
 */
export async function startGitHubAuth(
  deps: Pick<Deps, "store" | "config">,
  flow: GitHubFlow,
  requestOrigin: string,
  now = Date.now(),
): Promise<{ authorizeUrl: string; browserNonce: string }> {
  const { clientId } = oauthApp(deps.config);
  const redirectUri = callbackUrl(deps.config, requestOrigin);
  const { state, codeVerifier, browserNonce } = await putOAuthState(deps, "github", flow, redirectUri, now);
  const authorizeUrl = GitHubClient.fromConfig(deps.config).authorizeUrl({
    clientId,
    redirectUri,
    state,
    codeChallenge: s256(codeVerifier),
  });
  return { authorizeUrl, browserNonce };
}

export type GitHubOutcome = OAuthOutcome;

/**
 * GitHub's redirect back. The state is consumed first (delete returns it), so
 * a replayed, forged or expired one fails before anything reaches GitHub; then
 * the browser must show the flow's nonce (the `hoist_oauth` cookie), so a flow
 * started elsewhere fails too, its state spent.
 */
export async function completeGitHubAuth(
  deps: Deps,
  input: { code?: string; state: string; error?: string; browserNonce?: string },
  caller: Caller,
  now = Date.now(),
): Promise<GitHubOutcome> {
  const app = oauthApp(deps.config);
  const flow = await takeOAuthState(deps, "github", input, caller, now);
  if (input.error || !input.code) {
    const detail =
      input.error === "access_denied"
        ? "The GitHub authorization was declined; nothing was changed"
        : `GitHub did not authorize the request (${input.error ?? "no code"})`;
    throw new HoistError(400, "github_oauth", detail);
  }
  const client = GitHubClient.fromConfig(deps.config);
  const token = await client.exchangeCode({
    ...app,
    code: input.code,
    redirectUri: flow.redirectUri,
    codeVerifier: flow.codeVerifier,
  });
  const profile = await client.user(token);
  if (flow.mode === "link") {
    return { mode: "link", user: await linkGitHub(deps, flow.userId, profile, token, caller) };
  }
  const guard = await deps.store.get<GuardItem>(userKeys.github(String(profile.id)));
  if (guard)
    return { mode: "login", created: false, session: await signIn(deps, guard.userId, profile, token, caller) };
  const email = profile.email || (await client.primaryEmail(token));
  return { mode: "login", created: true, session: await signUp(deps, profile, email, token, caller) };
}

const seal = (deps: Pick<Deps, "keyVault">, token: string, userId: string) =>
  deps.keyVault.encrypt(token, { ownerId: userId });

/** The GitHub user is linked already: sign that account in and keep the newest token. */
async function signIn(deps: Deps, userId: string, profile: GitHubProfile, token: string, caller: Caller) {
  const user = await deps.store.get<UserItem>(userKeys.user(userId));
  if (!user) throw new ConflictError("The account linked to this GitHub user no longer exists");
  if (user.disabled) throw new ForbiddenError("This account is disabled");
  let updated: UserItem;
  try {
    updated = await deps.store.update<UserItem>(userKeys.user(user.id), {
      set: { githubLogin: profile.login, githubToken: await seal(deps, token, user.id), updatedAt: Date.now() },
      add: { version: 1 },
      condition: cond.eq("githubId", String(profile.id)),
    });
  } catch (err) {
    if (err instanceof ConditionFailedError) throw new ConflictError("GitHub was unlinked from this account meanwhile");
    throw err;
  }
  return startSession(deps, caller, updated, "auth.login", { method: "github", githubLogin: profile.login });
}

/** A new account from a GitHub user. An email someone registered already is refused, never linked by email. */
async function signUp(deps: Deps, profile: GitHubProfile, email: string | undefined, token: string, caller: Caller) {
  if (!email || !Email.safeParse(email).success) {
    throw new HoistError(
      400,
      "github_no_email",
      "Your GitHub account has no verified primary email address; add one on GitHub and try again",
    );
  }
  if (await deps.store.get(userKeys.email(email))) throw emailTaken();
  const githubId = String(profile.id);
  const draft = newUserItem({
    username: "",
    email,
    role: "member",
    authType: "github",
    githubId,
    githubLogin: profile.login,
    plan: deps.config.plans.default,
  });
  draft.githubToken = await seal(deps, token, draft.id);

  return signUpExternal(deps, caller, draft, usernameCandidates(profile.login, githubId), {
    provider: "GitHub",
    key: userKeys.github(githubId),
    emailTaken,
    audit: { method: "github", githubLogin: profile.login },
  });
}

/** The GitHub login if it is free and valid, else the login with `-2`, `-3`, … and finally random suffixes. */
export function* usernameCandidates(login: string, githubId: string): Generator<string> {
  const tidy = (s: string) => s.replace(/[^A-Za-z0-9_.-]+/g, "-").replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, "");
  let base = tidy(login);
  if (base.length < 3) base = base ? `${base}-gh` : "github";
  const withSuffix = (suffix: string) => `${tidy(base.slice(0, 39 - suffix.length))}${suffix}`;
  const all = [
    withSuffix(""),
    ...Array.from({ length: 19 }, (_, i) => withSuffix(`-${i + 2}`)),
    ...Array.from({ length: 3 }, () => withSuffix(`-${randomBytes(3).toString("hex")}`)),
    `gh-${githubId}`,
  ];
  for (const name of all) if (Username.safeParse(name).success) yield name;
}

/** Links the GitHub user to the account that started the flow; the guard and the user change together. */
async function linkGitHub(
  deps: Deps,
  userId: string | undefined,
  profile: GitHubProfile,
  token: string,
  caller: Caller,
): Promise<User> {
  const user = userId ? await deps.store.get<UserItem>(userKeys.user(userId)) : undefined;
  if (!user) throw new UnauthorizedError("The account that started linking no longer exists");
  if (user.disabled) throw new ForbiddenError("This account is disabled");
  const githubId = String(profile.id);
  const replaced = user.githubId !== undefined && user.githubId !== githubId ? user.githubId : undefined;
  const set = {
    githubId,
    githubLogin: profile.login,
    githubToken: await seal(deps, token, user.id),
    updatedAt: Date.now(),
    version: user.version + 1,
  };
  const ops: TransactOp[] = [
    {
      put: { ...userKeys.github(githubId), entity: "guard", userId: user.id },
      condition: cond.or(cond.attrNotExists("pk"), cond.eq("userId", user.id)),
    },
    { update: { ...userKeys.user(user.id), set, condition: cond.eq("version", user.version) } },
    ...(replaced ? [{ delete: userKeys.github(replaced), condition: cond.eq("userId", user.id) }] : []),
  ];
  try {
    await deps.store.transact(ops);
  } catch (err) {
    if (!(err instanceof ConditionFailedError)) throw err;
    if (err.failedIndexes.includes(0)) {
      throw new ConflictError("This GitHub account is already linked to another Hoist account");
    }
    throw new ConflictError("Your account changed meanwhile; try linking again");
  }
  await recordAudit(deps, {
    userId: user.id,
    action: "auth.github_linked",
    resourceType: "user",
    resourceId: user.id,
    details: { githubId, githubLogin: profile.login, ...(replaced ? { replacedGithubId: replaced } : {}) },
    ipAddress: caller.ip,
  });
  return toUser({ ...user, ...set });
}

/** Removes the link; refused for an account without a password, which could not sign in any more. */
export async function unlinkGitHub(deps: Deps, user: UserItem, caller: Caller): Promise<User> {
  const { githubId, githubLogin } = user;
  if (!githubId) throw new ConflictError("No GitHub account is linked to this account");
  if (user.authType === "github" || !user.passwordHash) {
    throw new ConflictError("This account signs in only with GitHub and has no password; unlinking would lock it out");
  }
  const now = Date.now();
  try {
    await deps.store.transact([
      {
        update: {
          ...userKeys.user(user.id),
          set: { updatedAt: now, version: user.version + 1 },
          remove: ["githubId", "githubLogin", "githubToken"],
          condition: cond.eq("version", user.version),
        },
      },
      { delete: userKeys.github(githubId), condition: cond.or(cond.attrNotExists("pk"), cond.eq("userId", user.id)) },
    ]);
  } catch (err) {
    if (err instanceof ConditionFailedError) throw new ConflictError("Your account changed meanwhile; try again");
    throw err;
  }
  await recordAudit(deps, {
    userId: user.id,
    action: "auth.github_unlinked",
    resourceType: "user",
    resourceId: user.id,
    details: { githubId, githubLogin },
    ipAddress: caller.ip,
  });
  const { githubId: _id, githubLogin: _login, githubToken: _token, ...rest } = user;
  return toUser({ ...rest, updatedAt: now, version: user.version + 1 });
}

/** The user's GitHub token, decrypted, for calls to GitHub on their behalf. Never log or return it. */
export async function githubTokenFor(deps: Pick<Deps, "keyVault">, user: UserItem): Promise<string> {
  if (!user.githubToken) {
    throw new ConflictError("No GitHub account is linked; link one with POST /api/auth/github/link");
  }
  return deps.keyVault.decrypt(user.githubToken, { ownerId: user.id });
}
