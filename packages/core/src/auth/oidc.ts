import { createRemoteJWKSet, customFetch, errors, type JWTPayload, jwtVerify } from "jose";
import { z } from "zod";
import type { Config } from "../config.ts";
import { HoistError, NotConfiguredError } from "../errors.ts";
import type { Deps } from "../ports.ts";

/**
 * An OpenID Connect relying party for one provider (HOIST_OIDC_*): discovery
 * (`/.well-known/openid-configuration`, cached), the authorization URL (code
 * flow, PKCE S256, `nonce`), the code exchange (client_secret_basic or _post,
 * as the provider advertises) and the ID token, verified with jose against the
 * provider's JWKS (cached by jose): signature, issuer, audience, expiry, nonce.
 */
export const OIDC_SCOPES = "openid email profile";
const DEFAULT_TIMEOUT_MS = 10_000;
const DISCOVERY_TTL_MS = 60 * 60 * 1000;
const CLOCK_TOLERANCE_SECONDS = 30;
const ASYMMETRIC = /^(?:(?:RS|PS|ES)(?:256|384|512)|EdDSA|Ed25519)$/;

const endpoint = z.url({ protocol: /^https?$/ }).max(2000);
const Discovery = z.object({
  issuer: z.string().min(1).max(2000),
  authorization_endpoint: endpoint,
  token_endpoint: endpoint,
  jwks_uri: endpoint,
  userinfo_endpoint: endpoint.optional(),
  token_endpoint_auth_methods_supported: z.array(z.string().max(100)).max(50).optional(),
  id_token_signing_alg_values_supported: z.array(z.string().max(100)).max(50).optional(),
});
type Discovery = z.infer<typeof Discovery>;

const TokenAnswer = z.object({
  id_token: z.string().min(1).max(16_384).optional(),
  access_token: z.string().min(1).max(16_384).optional(),
  error: z.string().max(200).optional(),
  error_description: z.string().max(2000).optional(),
});
const ErrorAnswer = TokenAnswer.pick({ error: true, error_description: true });

const verified = z.union([z.boolean(), z.enum(["true", "false"]).transform((s) => s === "true")]);
/** The claims Hoist reads, from the ID token or the userinfo endpoint; anything odd is simply not used. */
const Profile = z.object({
  email: z.string().max(320).optional().catch(undefined),
  email_verified: verified.optional().catch(undefined),
  preferred_username: z.string().max(200).optional().catch(undefined),
  name: z.string().max(200).optional().catch(undefined),
});
const UserinfoAnswer = Profile.extend({ sub: z.string().min(1).max(255) });

/** Who signed in at the provider: (issuer, subject) is the identity; the rest only seeds a new account. */
export interface OidcIdentity {
  issuer: string;
  subject: string;
  email?: string;
  /** The provider's `email_verified`; undefined when it says nothing. */
  emailVerified?: boolean;
  preferredUsername?: string;
  name?: string;
}

const unavailable = (detail: string) => new HoistError(502, "oidc_unavailable", detail);
const invalidIdToken = (name: string, why: string) =>
  new HoistError(400, "oidc_invalid_id_token", `The ID token from ${name} was refused: ${why}; nothing was changed`);
const trimSlash = (url: string) => url.replace(/\/+$/, "");
const isTimeout = (err: unknown) => err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");
/** RFC 6749 § 2.3.1: the client id and secret are form-encoded before they go into the Basic header. */
const formEncode = (s: string) => new URLSearchParams({ s }).toString().slice(2);

export interface OidcClientOptions {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** The provider's name in messages ("Google"). */
  name?: string;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export class OidcClient {
  readonly issuer: string;
  readonly name: string;
  private readonly clientId: string;
  private readonly clientSecret: string;
  private readonly timeoutMs: number;
  private readonly fetch: typeof fetch;
  private discovery?: { doc: Promise<Discovery>; at: number };
  private jwks?: ReturnType<typeof createRemoteJWKSet>;

  constructor(opts: OidcClientOptions) {
    this.issuer = opts.issuer;
    this.clientId = opts.clientId;
    this.clientSecret = opts.clientSecret;
    this.name = opts.name ?? "OpenID Connect";
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.fetch = opts.fetch ?? fetch;
  }

  /** The configured provider's client; 503 when its settings (HOIST_OIDC_*) are not set. */
  static fromSettings(
    settings: OidcSettings | undefined,
    opts: Pick<OidcClientOptions, "fetch" | "timeoutMs"> = {},
  ): OidcClient {
    if (!settings) throw new NotConfiguredError("OpenID Connect sign-in is not configured");
    return new OidcClient({ ...settings, ...opts });
  }

  /**
   * The discovery document, fetched once an hour (a failure is not kept). Its `issuer` must be the
   * configured one (a trailing slash aside): the ID tokens are then checked against the document's.
   */
  metadata(now = Date.now()): Promise<Discovery> {
    if (!this.discovery || now - this.discovery.at > DISCOVERY_TTL_MS) {
      const doc = this.discover();
      this.discovery = { doc, at: now };
      doc.catch(() => {
        if (this.discovery?.doc === doc) this.discovery = undefined;
      });
    }
    return this.discovery.doc;
  }

  private async discover(): Promise<Discovery> {
    const url = `${trimSlash(this.issuer)}/.well-known/openid-configuration`;
    const doc = await this.call("the discovery request", url, Discovery, {});
    if (trimSlash(doc.issuer) !== trimSlash(this.issuer)) {
      throw unavailable(`${this.name}'s discovery document names another issuer (${doc.issuer.slice(0, 200)})`);
    }
    const https = this.issuer.startsWith("https:");
    const endpoints = [doc.authorization_endpoint, doc.token_endpoint, doc.jwks_uri, doc.userinfo_endpoint];
    if (https && endpoints.some((u) => u !== undefined && !u.startsWith("https:"))) {
      throw unavailable(`${this.name}'s discovery document names an endpoint that is not https`);
    }
    return doc;
  }

  async authorizeUrl(p: { redirectUri: string; state: string; nonce: string; codeChallenge: string }): Promise<string> {
    const url = new URL((await this.metadata()).authorization_endpoint);
    const params = {
      response_type: "code",
      client_id: this.clientId,
      redirect_uri: p.redirectUri,
      scope: OIDC_SCOPES,
      state: p.state,
      nonce: p.nonce,
      code_challenge: p.codeChallenge,
      code_challenge_method: "S256",
    };
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    return url.toString();
  }

  /**
   * Trades the code for tokens, authenticating as the provider advertises (client_secret_basic unless it
   * offers only client_secret_post). A refusal of the code is a 400; of Hoist's own settings, a 502.
   */
  async exchangeCode(p: {
    code: string;
    redirectUri: string;
    codeVerifier: string;
  }): Promise<{ idToken: string; accessToken?: string }> {
    const meta = await this.metadata();
    const methods = meta.token_endpoint_auth_methods_supported ?? ["client_secret_basic"];
    const basic = methods.includes("client_secret_basic") || !methods.includes("client_secret_post");
    const body = new URLSearchParams({
      grant_type: "authorization_code",
      code: p.code,
      redirect_uri: p.redirectUri,
      code_verifier: p.codeVerifier,
      ...(basic ? {} : { client_id: this.clientId, client_secret: this.clientSecret }),
    });
    const headers: Record<string, string> = { "Content-Type": "application/x-www-form-urlencoded" };
    if (basic) {
      const credentials = `${formEncode(this.clientId)}:${formEncode(this.clientSecret)}`;
      headers.Authorization = `Basic ${Buffer.from(credentials).toString("base64")}`;
    }
    const answer = await this.call("the code exchange", meta.token_endpoint, TokenAnswer, {
      method: "POST",
      headers,
      body,
      refusal: ErrorAnswer,
    });
    if (answer.id_token) {
      return { idToken: answer.id_token, ...(answer.access_token ? { accessToken: answer.access_token } : {}) };
    }
    const error = answer.error ?? "no ID token";
    if (["invalid_client", "unauthorized_client", "unsupported_grant_type"].includes(error)) {
      throw unavailable(
        `${this.name} rejected Hoist's client settings (${error}); check HOIST_OIDC_CLIENT_ID, HOIST_OIDC_CLIENT_SECRET and the redirect URI`,
      );
    }
    const why = (answer.error_description ?? error).slice(0, 200);
    throw new HoistError(400, "oidc_refused", `${this.name} refused the authorization code: ${why}`);
  }

  /**
   * The ID token's signature (a key of the provider's JWKS, an asymmetric algorithm it advertises),
   * issuer, audience (this client; `azp` too when there are several), expiry and the flow's nonce.
   */
  async verifyIdToken(idToken: string, nonce: string): Promise<OidcIdentity> {
    const meta = await this.metadata();
    const algorithms = (meta.id_token_signing_alg_values_supported ?? ["RS256"]).filter((a) => ASYMMETRIC.test(a));
    if (algorithms.length === 0) throw unavailable(`${this.name} signs ID tokens with no algorithm Hoist accepts`);
    // Google's tokens may name their issuer without the scheme (its documentation says so).
    const issuers = meta.issuer === "https://accounts.google.com" ? [meta.issuer, "accounts.google.com"] : meta.issuer;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(idToken, this.keySet(meta), {
        issuer: issuers,
        audience: this.clientId,
        algorithms,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ["sub", "iat", "exp"],
      }));
    } catch (err) {
      throw this.verificationError(err);
    }
    if (payload.nonce !== nonce) throw invalidIdToken(this.name, "its nonce is not this sign-in's");
    const audiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if ((payload.azp !== undefined || audiences.length > 1) && payload.azp !== this.clientId) {
      throw invalidIdToken(this.name, "it was issued to another client (azp)");
    }
    const subject = payload.sub ?? "";
    if (subject.length === 0 || subject.length > 255) throw invalidIdToken(this.name, "its subject is not valid");
    return { issuer: meta.issuer, subject, ...profile(Profile.parse(payload)) };
  }

  /** The userinfo endpoint's claims, for a sign-up whose ID token carried no email; its `sub` must match. */
  async userinfo(accessToken: string, subject: string): Promise<Partial<OidcIdentity>> {
    const meta = await this.metadata();
    if (!meta.userinfo_endpoint) return {};
    const answer = await this.call("the userinfo request", meta.userinfo_endpoint, UserinfoAnswer, {
      headers: { Authorization: `Bearer ${accessToken}` },
    });
    if (answer.sub !== subject) throw unavailable(`${this.name}'s userinfo answer is about another user`);
    return profile(answer);
  }

  private keySet(meta: Discovery) {
    this.jwks ??= createRemoteJWKSet(new URL(meta.jwks_uri), {
      timeoutDuration: this.timeoutMs,
      [customFetch]: (url, init) => this.fetch(url, init),
    });
    return this.jwks;
  }

  private verificationError(err: unknown): HoistError {
    const name = this.name;
    if (err instanceof errors.JWTExpired) return invalidIdToken(name, "it has expired");
    if (err instanceof errors.JWTClaimValidationFailed) {
      const why: Record<string, string> = {
        aud: "it was issued to another client (audience)",
        iss: `its issuer is not ${this.issuer}`,
        nbf: "it is not valid yet",
        iat: "its issue time is missing or invalid",
        sub: "it names no subject",
        exp: "its expiry is missing or invalid",
      };
      return invalidIdToken(name, why[err.claim] ?? `its ${err.claim} claim is not valid`);
    }
    if (err instanceof errors.JWSSignatureVerificationFailed || err instanceof errors.JWKSNoMatchingKey) {
      return invalidIdToken(name, `it is not signed with a key ${name} publishes`);
    }
    if (err instanceof errors.JOSEAlgNotAllowed) return invalidIdToken(name, "its signing algorithm is not allowed");
    if (err instanceof errors.JWKSTimeout) {
      return unavailable(`${name} did not answer the keys request within ${this.timeoutMs / 1000} s`);
    }
    if (
      err instanceof errors.JWSInvalid ||
      err instanceof errors.JWTInvalid ||
      err instanceof errors.JOSENotSupported
    ) {
      return invalidIdToken(name, "it is malformed");
    }
    return unavailable(`Could not read ${name}'s signing keys`);
  }

  /** A GET or POST with a timeout; `refusal` parses a 4xx body the caller handles (OAuth error answers). */
  private async call<T>(
    what: string,
    url: string,
    schema: z.ZodType<T>,
    init: RequestInit & { refusal?: z.ZodType<Partial<T>> },
  ): Promise<T> {
    const { refusal, ...request } = init;
    const timeout = () => unavailable(`${this.name} did not answer ${what} within ${this.timeoutMs / 1000} s`);
    let res: Response;
    try {
      res = await this.fetch(url, {
        ...request,
        headers: { Accept: "application/json", "User-Agent": "hoist", ...request.headers },
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw isTimeout(err) ? timeout() : unavailable(`Could not reach ${this.name} for ${what}`);
    }
    const parser = res.ok ? schema : res.status >= 400 && res.status < 500 && refusal ? refusal : undefined;
    if (!parser) {
      await res.body?.cancel().catch(() => undefined);
      throw unavailable(`${this.name} answered ${what} with HTTP ${res.status}`);
    }
    let body: unknown;
    try {
      body = await res.json();
    } catch (err) {
      if (isTimeout(err)) throw timeout();
      if (!res.ok) throw unavailable(`${this.name} answered ${what} with HTTP ${res.status}`);
      throw unavailable(`${this.name}'s answer to ${what} was not JSON`);
    }
    const parsed = parser.safeParse(body);
    if (!parsed.success) throw unavailable(`${this.name}'s answer to ${what} did not have the expected shape`);
    return parsed.data as T;
  }
}

function profile(claims: z.infer<typeof Profile>): Omit<OidcIdentity, "issuer" | "subject"> {
  return {
    ...(claims.email ? { email: claims.email } : {}),
    ...(claims.email_verified !== undefined ? { emailVerified: claims.email_verified } : {}),
    ...(claims.preferred_username ? { preferredUsername: claims.preferred_username } : {}),
    ...(claims.name ? { name: claims.name } : {}),
  };
}

/** The provider's settings (HOIST_OIDC_*). */
export type OidcSettings = NonNullable<Config["oidc"]>;

/**
 * The provider's settings: read on first use where they are secrets (`Deps.readOidcSettings`, on AWS), else
 * the configuration's. Undefined when OpenID Connect sign-in is not configured.
 */
export async function oidcSettings(deps: Pick<Deps, "config" | "readOidcSettings">): Promise<OidcSettings | undefined> {
  return deps.readOidcSettings ? deps.readOidcSettings() : deps.config.oidc;
}

const clients = new WeakMap<OidcSettings, OidcClient>();

/**
 * The client of these settings' provider, built once (by `build`, given on first use: tests pass one
 * with their own fetch), so its discovery document and keys stay cached across requests.
 */
export function oidcClient(
  settings: OidcSettings | undefined,
  build = () => OidcClient.fromSettings(settings),
): OidcClient {
  if (!settings) return build();
  let client = clients.get(settings);
  if (!client) {
    client = build();
    clients.set(settings, client);
  }
  return client;
}
