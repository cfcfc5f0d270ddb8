import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { type CryptoKey, decodeJwt, exportJWK, generateKeyPair, type JWTPayload, SignJWT } from "jose";
import Provider, { type ProviderContext } from "oidc-provider";

/** An account at the test provider: what its ID token and userinfo say. */
export interface TestOidcAccount {
  sub: string;
  email?: string;
  email_verified?: boolean;
  preferred_username?: string;
  name?: string;
}

/**
 * A real OpenID provider (`oidc-provider` v9) on a loopback port, with one
 * client registered for the Hoist app under test. Its login interaction is
 * answered programmatically for the account chosen with `signInAs`, and
 * consent is granted up front; `browse` plays the browser (a cookie jar per
 * flow) from the authorize URL to the redirect back to Hoist. `fetch` is the
 * one to give Hoist: it passes everything through, but can rewrite the next
 * token endpoint answer's ID token (`tamperNext`), to play a forged or
 * misdirected token.
 */
export class TestOidcProvider {
  readonly clientId = "hoist-test";
  readonly clientSecret = randomBytes(24).toString("base64url");
  /** What reached the provider: method, path and Authorization header (to check the client authentication). */
  readonly requests: { method: string; path: string; authorization?: string }[] = [];
  /** Rewrites the claims of the next ID token Hoist receives; re-sign with `sign`. */
  tamperNext: ((claims: JWTPayload) => Promise<string>) | undefined;
  private readonly accounts = new Map<string, TestOidcAccount>();
  private current: string | undefined;

  private constructor(
    private readonly server: Server,
    readonly issuer: string,
    private readonly key: { privateKey: CryptoKey; kid: string },
  ) {}

  static async start(opts: { redirectUri: string; authMethod?: string }): Promise<TestOidcProvider> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const { privateKey } = await generateKeyPair("RS256", { extractable: true });
    const kid = randomBytes(8).toString("hex");
    const op = new TestOidcProvider(server, issuer, { privateKey, kid });
    const provider = new Provider(issuer, {
      clients: [
        {
          client_id: op.clientId,
          client_secret: op.clientSecret,
          redirect_uris: [opts.redirectUri],
          grant_types: ["authorization_code"],
          response_types: ["code"],
          token_endpoint_auth_method: opts.authMethod ?? "client_secret_basic",
        },
      ],
      jwks: { keys: [{ ...(await exportJWK(privateKey)), kid, alg: "RS256", use: "sig" }] },
      claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["preferred_username", "name"] },
      findAccount: (_ctx: unknown, id: string) => {
        const account = op.accounts.get(id);
        return account && { accountId: id, claims: () => account };
      },
      features: { devInteractions: { enabled: false } },
      ttl: { AccessToken: 600, AuthorizationCode: 60, Grant: 600, IdToken: 600, Interaction: 600, Session: 600 },
      interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
      cookies: { keys: [randomBytes(16).toString("hex")] },
      // First-party client: consent is granted without asking.
      loadExistingGrant: async (ctx: ProviderContext) => {
        const accountId = ctx.oidc.session?.accountId;
        if (!accountId || !ctx.oidc.client) return undefined;
        const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId });
        grant.addOIDCScope("openid email profile");
        await grant.save();
        return grant;
      },
    });
    const handle = provider.callback();
    server.on("request", (req, res) => {
      op.requests.push({ method: req.method ?? "", path: req.url ?? "", authorization: req.headers.authorization });
      if (!req.url?.startsWith("/interaction/")) return handle(req, res);
      (async () => {
        await provider.interactionDetails(req, res);
        if (!op.current) {
          await provider.interactionFinished(req, res, { error: "access_denied" }, { mergeWithLastSubmission: false });
          return;
        }
        await provider.interactionFinished(req, res, { login: { accountId: op.current } });
      })().catch((err: unknown) => {
        res.statusCode = 500;
        res.end(String(err));
      });
    });
    return op;
  }

  /** The environment that points Hoist at this provider. */
  env(): Record<string, string> {
    return {
      HOIST_OIDC_ISSUER: this.issuer,
      HOIST_OIDC_CLIENT_ID: this.clientId,
      HOIST_OIDC_CLIENT_SECRET: this.clientSecret,
      HOIST_OIDC_NAME: "TestID",
    };
  }

  addAccount(account: TestOidcAccount): TestOidcAccount {
    this.accounts.set(account.sub, account);
    return account;
  }

  /** Who signs in at the provider in the next flows; null: the user declines. */
  signInAs(account: TestOidcAccount | null): void {
    this.current = account?.sub;
  }

  /** Signs claims as the provider does (its key), or with another key (a forgery). */
  sign(claims: JWTPayload, key: { privateKey: CryptoKey; kid: string } = this.key): Promise<string> {
    return new SignJWT(claims).setProtectedHeader({ alg: "RS256", kid: key.kid }).sign(key.privateKey);
  }

  /** Hoist's fetch: the real one, with the next token answer's ID token rewritten when `tamperNext` is set. */
  readonly fetch: typeof fetch = async (input, init) => {
    const res = await fetch(input, init);
    const url = input instanceof Request ? input.url : String(input);
    const tamper = this.tamperNext;
    if (!tamper || url !== `${this.issuer}/token` || !res.ok) return res;
    this.tamperNext = undefined;
    const body = (await res.json()) as { id_token: string };
    body.id_token = await tamper(decodeJwt(body.id_token));
    return Response.json(body, { status: res.status });
  };

  /**
   * A browser at the provider: opens the authorize URL and follows the redirects (keeping cookies) until
   * one leads back to `callbackPrefix`; answers that location. A fresh browser each time.
   */
  async browse(authorizeUrl: string, callbackPrefix: string): Promise<string> {
    const jar = new Map<string, string>();
    let url = authorizeUrl;
    for (let hop = 0; hop < 10; hop++) {
      const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
      const res = await fetch(url, { redirect: "manual", headers: cookie ? { cookie } : {} });
      for (const set of res.headers.getSetCookie()) {
        const [pair = ""] = set.split(";");
        const at = pair.indexOf("=");
        jar.set(pair.slice(0, at), pair.slice(at + 1));
      }
      const location = res.headers.get("location");
      if (!location) throw new Error(`the provider answered ${res.status}: ${(await res.text()).slice(0, 500)}`);
      await res.body?.cancel();
      url = new URL(location, url).toString();
      if (url.startsWith(callbackPrefix)) return url;
    }
    throw new Error("too many redirects at the provider");
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
