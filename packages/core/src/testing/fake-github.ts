import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * GitHub on loopback, for tests: the OAuth web flow (`/login/oauth/authorize`,
 * `/login/oauth/access_token`, with PKCE S256 and single-use codes) and the
 * REST API under `/api/v3` (as on GitHub Enterprise, so base URLs with a path
 * are exercised). REST endpoints are a small route table: later features add
 * theirs with `api()`. Every request is kept in `requests`.
 */
export interface FakeGitHubUser {
  id: number;
  login: string;
  name: string | null;
  /** The public profile email; `null` hides it, as GitHub does by default. */
  email: string | null;
  emails: { email: string; primary: boolean; verified: boolean; visibility: "public" | "private" | null }[];
}

export interface FakeRequest {
  method: string;
  /** Without the API prefix for REST calls. */
  path: string;
  query: Record<string, string>;
  headers: Record<string, string | undefined>;
  body: string;
}

export interface FakeResponse {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export type FakeApiHandler = (req: FakeRequest, user: FakeGitHubUser, params: string[]) => FakeResponse;

export interface FakeRepo {
  id: number;
  fullName: string;
  private: boolean;
  /** GitHub user ids that may read it and manage its webhooks. */
  admins: number[];
  updatedAt: number;
}

export interface FakeHook {
  id: number;
  name: string;
  active: boolean;
  events: string[];
  config: Record<string, string>;
}

interface Grant {
  userId: number;
  redirectUri: string;
  codeChallenge: string;
  scope: string;
  expiresAt: number;
  used: boolean;
}

const CODE_TTL_MS = 10 * 60_000;
const s256 = (verifier: string) => createHash("sha256").update(verifier).digest("base64url");

export class FakeGitHub {
  static readonly API_PREFIX = "/api/v3";
  readonly users = new Map<number, FakeGitHubUser>();
  readonly requests: FakeRequest[] = [];
  /** Access tokens handed out, oldest first, to compare with what Hoist stored. */
  readonly issuedTokens: { token: string; userId: number }[] = [];
  /** The user signed in to GitHub in "the browser": the authorize page approves for them at once; `null` denies. */
  signedIn: number | null = null;
  /** Answers every request this much later (timeouts). */
  delayMs = 0;
  url = "";
  apiUrl = "";

  private readonly grants = new Map<string, Grant>();
  private readonly tokens = new Map<string, number>();
  private readonly failures = new Map<string, number>();
  private readonly rateLimits = new Map<string, number>();
  /** Repositories by lower-case full name. */
  readonly repos = new Map<string, FakeRepo>();
  /** Webhooks by lower-case repository full name. */
  readonly hooks = new Map<string, FakeHook[]>();
  /** Re-runs asked for, in order. */
  readonly reruns: { repo: string; runId: string; failedOnly: boolean; userId: number }[] = [];
  private readonly routes: { method: string; pattern: RegExp; handler: FakeApiHandler }[] = [];
  private nextId = 1000;
  private server: Server | undefined;

  constructor(
    readonly clientId = "Iv1.fakeclientid",
    readonly clientSecret = randomBytes(20).toString("hex"),
  ) {
    this.api("GET", /^\/user$/, (_req, user) => ({ status: 200, body: profile(user) }));
    this.api("GET", /^\/user\/emails$/, (_req, user) => ({ status: 200, body: user.emails }));
    this.restRoutes();
  }

  static async start(clientId?: string, clientSecret?: string): Promise<FakeGitHub> {
    const fake = new FakeGitHub(clientId, clientSecret);
    await fake.listen();
    return fake;
  }

  async listen(): Promise<void> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) send(res, { status: 500, body: { message: String(err) } });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    this.server = server;
    this.url = `http://127.0.0.1:${port}`;
    this.apiUrl = `${this.url}${FakeGitHub.API_PREFIX}`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  /** The Hoist configuration that points at this fake. */
  env(): Record<string, string> {
    return {
      HOIST_GITHUB_URL: this.url,
      HOIST_GITHUB_API_URL: this.apiUrl,
      HOIST_GITHUB_CLIENT_ID: this.clientId,
      HOIST_GITHUB_CLIENT_SECRET: this.clientSecret,
    };
  }

  addUser(fields: Partial<FakeGitHubUser> & { login: string }): FakeGitHubUser {
    const id = fields.id ?? this.nextId++;
    const user: FakeGitHubUser = {
      id,
      name: null,
      email: null,
      emails: [
        { email: `${fields.login.toLowerCase()}@users.example.com`, primary: true, verified: true, visibility: null },
      ],
      ...fields,
    };
    this.users.set(id, user);
    return user;
  }

  signInAs(user: FakeGitHubUser | null): void {
    this.signedIn = user ? user.id : null;
  }

  /** The next request to `path` (as seen by GitHub, e.g. `/login/oauth/access_token` or `/api/v3/user`) answers `status`. */
  failNext(path: string, status: number): void {
    this.failures.set(path, status);
  }

  /**
   * The next request to `path` (as seen by GitHub) answers 403 with
   * `x-ratelimit-remaining: 0`, `x-ratelimit-reset` and `retry-after` of
   * `seconds`, as GitHub's secondary rate limit does.
   */
  rateLimitNext(path: string, seconds = 1): void {
    this.rateLimits.set(path, seconds);
  }

  addRepo(owner: FakeGitHubUser, name: string, opts: { private?: boolean; admins?: FakeGitHubUser[] } = {}): FakeRepo {
    const repo: FakeRepo = {
      id: this.nextId++,
      fullName: `${owner.login}/${name}`,
      private: opts.private ?? false,
      admins: [owner.id, ...(opts.admins ?? []).map((u) => u.id)],
      updatedAt: Date.now() + this.nextId,
    };
    this.repos.set(repo.fullName.toLowerCase(), repo);
    return repo;
  }

  hooksOf(fullName: string): FakeHook[] {
    return this.hooks.get(fullName.toLowerCase()) ?? [];
  }

  /** `/user/repos` (Link-header pagination, most recently updated first), hooks, and workflow re-runs. */
  private restRoutes(): void {
    const repoOf = (params: string[], user: FakeGitHubUser) => {
      const repo = this.repos.get(`${params[0]}/${params[1]}`.toLowerCase());
      return repo?.admins.includes(user.id) ? repo : undefined;
    };
    const notFound = { status: 404, body: { message: "Not Found" } };
    this.api("GET", /^\/user\/repos$/, (req, user) => {
      const perPage = Math.min(100, Number(req.query.per_page ?? 30));
      const page = Math.max(1, Number(req.query.page ?? 1));
      const all = [...this.repos.values()]
        .filter((r) => r.admins.includes(user.id))
        .sort((a, b) => b.updatedAt - a.updatedAt);
      const items = all.slice((page - 1) * perPage, page * perPage);
      const last = Math.max(1, Math.ceil(all.length / perPage));
      const link = (p: number, rel: string) =>
        `<${this.apiUrl}/user/repos?per_page=${perPage}&page=${p}&sort=updated>; rel="${rel}"`;
      const links = [
        ...(page < last ? [link(page + 1, "next"), link(last, "last")] : []),
        ...(page > 1 ? [link(1, "first"), link(page - 1, "prev")] : []),
      ];
      return {
        status: 200,
        headers: links.length > 0 ? { link: links.join(", ") } : ({} as Record<string, string>),
        body: items.map((r) => ({
          id: r.id,
          name: r.fullName.split("/")[1],
          full_name: r.fullName,
          private: r.private,
          html_url: `https://github.example.com/${r.fullName}`,
          description: null,
          default_branch: "main",
          updated_at: new Date(r.updatedAt).toISOString(),
          owner: { login: r.fullName.split("/")[0] },
          permissions: { admin: true, push: true, pull: true },
        })),
      };
    });
    this.api("GET", /^\/repos\/([^/]+)\/([^/]+)$/, (_req, user, params) => {
      const repo = repoOf(params, user);
      return repo
        ? {
            status: 200,
            body: {
              id: repo.id,
              full_name: repo.fullName,
              private: repo.private,
              permissions: { admin: true, push: true, pull: true },
            },
          }
        : notFound;
    });
    this.api("PATCH", /^\/repos\/([^/]+)\/([^/]+)\/hooks\/(\d+)$/, (req, user, params) => {
      const repo = repoOf(params, user);
      const hook = repo && this.hooksOf(repo.fullName).find((h) => String(h.id) === params[2]);
      if (!hook) return notFound;
      const input = JSON.parse(req.body || "{}") as Partial<FakeHook>;
      Object.assign(hook, { ...input, config: { ...hook.config, ...input.config } });
      return { status: 200, body: hook };
    });
    this.api("GET", /^\/repos\/([^/]+)\/([^/]+)\/hooks$/, (_req, user, params) => {
      const repo = repoOf(params, user);
      return repo ? { status: 200, body: this.hooksOf(repo.fullName) } : notFound;
    });
    this.api("POST", /^\/repos\/([^/]+)\/([^/]+)\/hooks$/, (req, user, params) => {
      const repo = repoOf(params, user);
      if (!repo) return notFound;
      const input = JSON.parse(req.body || "{}") as Omit<FakeHook, "id">;
      const hooks = this.hooksOf(repo.fullName);
      if (hooks.some((h) => h.config.url === input.config?.url)) {
        return {
          status: 422,
          body: {
            message: "Validation Failed",
            errors: [{ resource: "Hook", code: "custom", message: "Hook already exists on this repository" }],
          },
        };
      }
      const hook: FakeHook = { id: this.nextId++, ...input };
      this.hooks.set(repo.fullName.toLowerCase(), [...hooks, hook]);
      return { status: 201, body: hook };
    });
    this.api("GET", /^\/repos\/([^/]+)\/([^/]+)\/hooks\/(\d+)$/, (_req, user, params) => {
      const repo = repoOf(params, user);
      const hook = repo && this.hooksOf(repo.fullName).find((h) => String(h.id) === params[2]);
      return hook ? { status: 200, body: hook } : notFound;
    });
    this.api("DELETE", /^\/repos\/([^/]+)\/([^/]+)\/hooks\/(\d+)$/, (_req, user, params) => {
      const repo = repoOf(params, user);
      const hooks = repo ? this.hooksOf(repo.fullName) : [];
      if (!repo || !hooks.some((h) => String(h.id) === params[2])) return notFound;
      this.hooks.set(
        repo.fullName.toLowerCase(),
        hooks.filter((h) => String(h.id) !== params[2]),
      );
      return { status: 204 };
    });
    this.api(
      "POST",
      /^\/repos\/([^/]+)\/([^/]+)\/actions\/runs\/(\d+)\/(rerun|rerun-failed-jobs)$/,
      (_req, user, params) => {
        const repo = repoOf(params, user);
        if (!repo) return notFound;
        this.reruns.push({
          repo: repo.fullName,
          runId: params[2] ?? "",
          failedOnly: params[3] === "rerun-failed-jobs",
          userId: user.id,
        });
        return { status: 201, body: {} };
      },
    );
  }

  /** A token for `user` without the web flow (for tests of later features). */
  issueToken(user: FakeGitHubUser): string {
    const token = `gho_${randomBytes(18).toString("base64url")}`;
    this.tokens.set(token, user.id);
    this.issuedTokens.push({ token, userId: user.id });
    return token;
  }

  /** Adds a REST endpoint under the API prefix; it is only called with a valid token. */
  api(method: string, pattern: RegExp, handler: FakeApiHandler): void {
    this.routes.unshift({ method, pattern, handler });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.url);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const headers = Object.fromEntries(
      Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : v]),
    );
    const isApi = url.pathname.startsWith(`${FakeGitHub.API_PREFIX}/`);
    const request: FakeRequest = {
      method: req.method ?? "GET",
      path: isApi ? url.pathname.slice(FakeGitHub.API_PREFIX.length) : url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers,
      body: Buffer.concat(chunks).toString("utf8"),
    };
    this.requests.push(request);
    if (this.delayMs > 0) await sleep(this.delayMs);
    if (res.destroyed) return;

    const limited = this.rateLimits.get(url.pathname);
    if (limited !== undefined) {
      this.rateLimits.delete(url.pathname);
      return send(res, {
        status: 403,
        headers: {
          "x-ratelimit-limit": "5000",
          "x-ratelimit-remaining": "0",
          "x-ratelimit-reset": String(Math.ceil(Date.now() / 1000) + limited),
          "retry-after": String(limited),
        },
        body: { message: "API rate limit exceeded (fake)", documentation_url: "https://docs.github.com/rest" },
      });
    }
    const failure = this.failures.get(url.pathname);
    if (failure !== undefined) {
      this.failures.delete(url.pathname);
      return send(res, { status: failure, body: { message: "Service unavailable (fake)" } });
    }
    if (isApi) return send(res, this.apiCall(request));
    if (request.method === "GET" && request.path === "/login/oauth/authorize")
      return send(res, this.authorize(request));
    if (request.method === "POST" && request.path === "/login/oauth/access_token") {
      const out = this.exchange(request);
      if ((request.headers.accept ?? "").includes("application/json")) return send(res, { status: 200, body: out });
      const form = new URLSearchParams(out as Record<string, string>).toString();
      return send(res, { status: 200, body: form, headers: { "content-type": "application/x-www-form-urlencoded" } });
    }
    send(res, { status: 404, body: { message: "Not Found" } });
  }

  private authorize(req: FakeRequest): FakeResponse {
    const q = req.query;
    if (q.client_id !== this.clientId) return { status: 404, body: { message: "Unknown OAuth application" } };
    if (!q.redirect_uri || !/^https?:\/\//.test(q.redirect_uri)) {
      return { status: 400, body: { message: "redirect_uri is required" } };
    }
    if (!q.code_challenge || q.code_challenge_method !== "S256") {
      return { status: 400, body: { message: "This fake requires PKCE with S256" } };
    }
    const back = new URL(q.redirect_uri);
    if (q.state !== undefined) back.searchParams.set("state", q.state);
    const user = this.signedIn === null ? undefined : this.users.get(this.signedIn);
    if (!user) {
      back.searchParams.set("error", "access_denied");
      back.searchParams.set("error_description", "The user has denied your application access.");
      return { status: 302, headers: { location: back.toString() } };
    }
    const code = randomBytes(10).toString("hex");
    this.grants.set(code, {
      userId: user.id,
      redirectUri: q.redirect_uri,
      codeChallenge: q.code_challenge,
      scope: q.scope ?? "",
      expiresAt: Date.now() + CODE_TTL_MS,
      used: false,
    });
    back.searchParams.set("code", code);
    return { status: 302, headers: { location: back.toString() } };
  }

  private exchange(req: FakeRequest): Record<string, string> {
    const type = req.headers["content-type"] ?? "";
    const p: Record<string, string> = type.includes("json")
      ? (JSON.parse(req.body || "{}") as Record<string, string>)
      : Object.fromEntries(new URLSearchParams(req.body));
    const fail = (error: string, error_description: string) => ({ error, error_description });
    if (p.client_id !== this.clientId || p.client_secret !== this.clientSecret) {
      return fail("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.");
    }
    const grant = p.code ? this.grants.get(p.code) : undefined;
    if (!grant || grant.used || grant.expiresAt < Date.now()) {
      return fail("bad_verification_code", "The code passed is incorrect or expired.");
    }
    grant.used = true;
    if (p.redirect_uri !== grant.redirectUri) {
      return fail("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL.");
    }
    if (!p.code_verifier || s256(p.code_verifier) !== grant.codeChallenge) {
      return fail("bad_verification_code", "The code_verifier does not match the code_challenge.");
    }
    const user = this.users.get(grant.userId);
    if (!user) return fail("bad_verification_code", "The user is gone.");
    return { access_token: this.issueToken(user), token_type: "bearer", scope: grant.scope };
  }

  private apiCall(req: FakeRequest): FakeResponse {
    const auth = /^(?:Bearer|token) (\S+)$/i.exec(req.headers.authorization ?? "");
    const userId = auth?.[1] ? this.tokens.get(auth[1]) : undefined;
    const user = userId === undefined ? undefined : this.users.get(userId);
    if (!user) {
      return { status: 401, body: { message: "Bad credentials", documentation_url: "https://docs.github.com/rest" } };
    }
    for (const route of this.routes) {
      const match = route.method === req.method ? route.pattern.exec(req.path) : null;
      if (match) return route.handler(req, user, match.slice(1));
    }
    return { status: 404, body: { message: "Not Found" } };
  }
}

function profile(user: FakeGitHubUser) {
  return {
    id: user.id,
    login: user.login,
    node_id: `U_${user.id}`,
    type: "User",
    name: user.name,
    email: user.email,
    avatar_url: `https://avatars.example.com/u/${user.id}`,
  };
}

function send(res: ServerResponse, out: FakeResponse): void {
  if (res.destroyed) return;
  const headers: Record<string, string> = { ...out.headers };
  let body = "";
  if (typeof out.body === "string") body = out.body;
  else if (out.body !== undefined) {
    body = JSON.stringify(out.body);
    headers["content-type"] ??= "application/json; charset=utf-8";
  }
  res.writeHead(out.status, headers);
  res.end(body);
}
