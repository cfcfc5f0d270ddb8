import { createHoistClient, type HoistClient } from "@hoist/client";
import { configPath, readConfig, type StoredConfig, writeConfig } from "./config.ts";
import { CliError, UnreachableError } from "./errors.ts";

/** Options every command takes (commander's global options). */
export interface GlobalOptions {
  url?: string;
  json?: boolean;
}

export const normalizeUrl = (url: string) => url.trim().replace(/\/+$/, "");

/**
 * Where Hoist is and the bearer to call it with. `HOIST_URL` and `HOIST_TOKEN`
 * override the stored config (CI); stored credentials are sent only to the URL
 * they were issued by. A password sign-in is refreshed silently: on a 401 the
 * refresh token is traded once for a new pair (saved) and the call retried.
 */
export class Session {
  readonly client: HoistClient;
  private refreshing: Promise<boolean> | undefined;

  constructor(
    readonly url: string,
    private bearer: string | undefined,
    private refreshToken: string | undefined,
    private readonly stored: StoredConfig,
    private readonly path: string,
  ) {
    this.client = createHoistClient({ baseUrl: url, token: () => this.bearer, fetch: (req) => this.fetch(req) });
  }

  get token(): string | undefined {
    return this.bearer;
  }

  /** A bearer is needed: a clear message when there is none. */
  requireToken(): string {
    if (!this.bearer) throw new CliError(`not signed in to ${this.url}: run \`hoist login\`, or set HOIST_TOKEN`);
    return this.bearer;
  }

  /** The stored WebSocket URL (learnt at login) when this is the stored server. */
  get storedWsUrl(): string | undefined {
    return this.stored.url && normalizeUrl(this.stored.url) === this.url ? this.stored.wsUrl : undefined;
  }

  /** Trades the refresh token for a new pair and saves it; false when there is none or it was refused. */
  refresh(): Promise<boolean> {
    const refreshToken = this.refreshToken;
    if (!refreshToken) return Promise.resolve(false);
    this.refreshing ??= (async () => {
      const anonymous = createHoistClient({ baseUrl: this.url, fetch: (req) => send(this.url, req) });
      const { data, response } = await anonymous.POST("/api/auth/refresh", { body: { refreshToken } });
      if (!response.ok || !data) return false;
      this.bearer = data.token;
      this.refreshToken = data.refreshToken;
      const latest = await readConfig(this.path).catch(() => this.stored);
      await writeConfig({ ...latest, accessToken: data.token, refreshToken: data.refreshToken }, this.path);
      return true;
    })().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async fetch(request: Request): Promise<Response> {
    const again = this.refreshToken && !SIGN_IN.test(new URL(request.url).pathname) ? request.clone() : undefined;
    const sentWith = this.bearer;
    const res = await send(this.url, request);
    if (res.status !== 401 || !again) return res;
    // Another call may have refreshed meanwhile; otherwise refresh now.
    if (this.bearer === sentWith && !(await this.refresh())) return res;
    if (this.bearer) again.headers.set("Authorization", `Bearer ${this.bearer}`);
    return send(this.url, again);
  }
}

/** Calls a 401 of which is no expired session. */
const SIGN_IN = /\/api\/auth\/(login|register|refresh|logout)$/;

/** `fetch`, with a network failure (refused, DNS, reset) said plainly. */
async function send(url: string, request: Request): Promise<Response> {
  try {
    return await fetch(request);
  } catch (err) {
    if (err instanceof TypeError) throw new UnreachableError(url, err);
    throw err;
  }
}

export async function openSession(opts: GlobalOptions, env: NodeJS.ProcessEnv = process.env): Promise<Session> {
  const path = configPath(env);
  const stored = await readConfig(path);
  const given = opts.url ?? env.HOIST_URL ?? stored.url;
  if (!given) throw new CliError("no Hoist URL: run `hoist login --url <url>`, or set HOIST_URL");
  const url = checkedUrl(given);
  const mine = !stored.url || normalizeUrl(stored.url) === url;
  if (env.HOIST_TOKEN) return new Session(url, env.HOIST_TOKEN, undefined, stored, path);
  if (mine && stored.apiToken) return new Session(url, stored.apiToken, undefined, stored, path);
  return new Session(url, mine ? stored.accessToken : undefined, mine ? stored.refreshToken : undefined, stored, path);
}

export function checkedUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new CliError(`not a URL: ${url} (e.g. http://127.0.0.1:3000)`, 2);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
    throw new CliError(`the Hoist URL must be http(s): ${url}`, 2);
  return normalizeUrl(parsed.toString());
}

/**
 * Where the WebSocket is: `--ws-url`, `HOIST_WS_URL`, what login learnt, the
 * `hoist-ws-url` meta tag of the page at `/` (AWS: its own host), else `/ws`
 * on the same origin (the embedded runtime).
 */
export async function wsUrlOf(session: Session, override?: string): Promise<string> {
  const explicit = override ?? process.env.HOIST_WS_URL ?? session.storedWsUrl;
  if (explicit) return explicit;
  return (await discoverWsUrl(session.url)) ?? defaultWsUrl(session.url);
}

export function defaultWsUrl(url: string): string {
  const u = new URL(url);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  u.pathname = `${u.pathname.replace(/\/+$/, "")}/ws`;
  return u.toString();
}

/** The meta tag the served page carries when the WebSocket is elsewhere; undefined when there is none. */
export async function discoverWsUrl(url: string): Promise<string | undefined> {
  try {
    const res = await fetch(`${url}/`, { headers: { Accept: "text/html" }, signal: AbortSignal.timeout(5000) });
    if (!res.ok) return undefined;
    const m = /<meta name="hoist-ws-url" content="([^"]+)">/.exec(await res.text());
    return m?.[1]?.replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code)));
  } catch {
    return undefined;
  }
}
