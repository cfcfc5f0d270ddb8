import { setTimeout as sleep } from "node:timers/promises";
import type { z } from "zod";
import type { Config } from "../config.ts";
import { HoistError } from "../errors.ts";

/**
 * GitHub's REST API on the user's behalf, over fetch. Rate-limit answers
 * (403/429 with `x-ratelimit-remaining: 0` or `retry-after`) and 5xx are
 * retried a bounded number of times with backoff, honouring `retry-after` /
 * `x-ratelimit-reset` up to MAX_WAIT_MS; what is left becomes a
 * `GitHubApiError` (status kept for callers that expect 404 or 422), which is
 * a 502 problem unless a caller maps it.
 */
const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_ATTEMPTS = 3;
const MAX_WAIT_MS = 5_000;
const BASE_BACKOFF_MS = 250;

export class GitHubApiError extends HoistError {
  override name = "GitHubApiError";
  constructor(
    readonly githubStatus: number,
    readonly githubMessage: string,
    detail: string,
  ) {
    super(502, "github_unavailable", detail);
  }
}

export interface GitHubAnswer<T> {
  status: number;
  data: T;
  headers: Headers;
}

export interface RestOptions {
  apiUrl: string;
  timeoutMs?: number;
  maxAttempts?: number;
  maxWaitMs?: number;
  fetch?: typeof fetch;
}

export class GitHubRest {
  private readonly apiUrl: string;
  private readonly timeoutMs: number;
  private readonly maxAttempts: number;
  private readonly maxWaitMs: number;
  private readonly fetch: typeof fetch;

  constructor(
    private readonly token: string,
    opts: RestOptions,
  ) {
    this.apiUrl = opts.apiUrl.replace(/\/+$/, "");
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxAttempts = opts.maxAttempts ?? MAX_ATTEMPTS;
    this.maxWaitMs = opts.maxWaitMs ?? MAX_WAIT_MS;
    this.fetch = opts.fetch ?? fetch;
  }

  static forToken(config: Config, token: string): GitHubRest {
    return new GitHubRest(token, { apiUrl: config.github.apiUrl });
  }

  /** One call; `schema` validates a 2xx body (`null` for bodiless answers such as 204). */
  async request<T>(
    method: string,
    path: string,
    schema: z.ZodType<T> | null,
    body?: unknown,
  ): Promise<GitHubAnswer<T>> {
    const what = `${method} ${path.split("?")[0]}`;
    for (let attempt = 1; ; attempt++) {
      let res: Response;
      try {
        res = await this.fetch(`${this.apiUrl}${path}`, {
          method,
          headers: {
            Authorization: `Bearer ${this.token}`,
            Accept: "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "hoist",
            ...(body === undefined ? {} : { "Content-Type": "application/json" }),
          },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(this.timeoutMs),
        });
      } catch (err) {
        const timedOut = err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");
        if (attempt < this.maxAttempts) {
          await sleep(backoff(attempt));
          continue;
        }
        throw new GitHubApiError(
          0,
          "",
          timedOut
            ? `GitHub did not answer ${what} within ${this.timeoutMs / 1000} s`
            : `Could not reach GitHub for ${what}`,
        );
      }
      if (res.ok) {
        const text = await res.text();
        if (!schema) return { status: res.status, data: null as T, headers: res.headers };
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          throw new GitHubApiError(res.status, "", `GitHub's answer to ${what} was not JSON`);
        }
        const parsed = schema.safeParse(json);
        if (!parsed.success) {
          throw new GitHubApiError(res.status, "", `GitHub's answer to ${what} did not have the expected shape`);
        }
        return { status: res.status, data: parsed.data, headers: res.headers };
      }
      const message = await errorMessage(res);
      const limited = isRateLimited(res);
      const retryable = limited || res.status >= 500;
      const wait = retryable ? waitFor(res, attempt) : null;
      if (retryable && attempt < this.maxAttempts && wait !== null && wait <= this.maxWaitMs) {
        await sleep(wait);
        continue;
      }
      throw new GitHubApiError(res.status, message, describe(what, res.status, message, limited));
    }
  }
}

function isRateLimited(res: Response): boolean {
  if (res.status !== 403 && res.status !== 429) return false;
  return res.headers.get("x-ratelimit-remaining") === "0" || res.headers.has("retry-after") || res.status === 429;
}

/** How long to wait before the next attempt: `retry-after`, else `x-ratelimit-reset`, else exponential backoff. */
function waitFor(res: Response, attempt: number): number {
  const retryAfter = Number(res.headers.get("retry-after"));
  if (res.headers.has("retry-after") && Number.isFinite(retryAfter)) return Math.max(0, retryAfter * 1000);
  const reset = Number(res.headers.get("x-ratelimit-reset"));
  if (res.headers.get("x-ratelimit-remaining") === "0" && Number.isFinite(reset) && reset > 0) {
    return Math.max(0, reset * 1000 - Date.now());
  }
  return backoff(attempt);
}

const backoff = (attempt: number) => BASE_BACKOFF_MS * 2 ** (attempt - 1) + Math.floor(Math.random() * 100);

async function errorMessage(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as { message?: unknown; errors?: { message?: unknown }[] };
    const parts = [
      typeof body.message === "string" ? body.message : "",
      ...(Array.isArray(body.errors) ? body.errors.map((e) => (typeof e?.message === "string" ? e.message : "")) : []),
    ].filter(Boolean);
    return parts.join(": ").slice(0, 300);
  } catch {
    return "";
  }
}

function describe(what: string, status: number, message: string, limited: boolean): string {
  if (limited) return `GitHub's rate limit for your token is exhausted (${what}); try again later`;
  return `GitHub answered ${what} with HTTP ${status}${message ? ` (${message})` : ""}`;
}

/** The `page` number of the `rel="next"` link in GitHub's `Link` header, if any. */
export function nextPage(link: string | null): number | null {
  if (!link) return null;
  for (const part of link.split(",")) {
    const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(part.trim());
    if (!m?.[1]) continue;
    const page = Number(new URL(m[1], "http://x").searchParams.get("page"));
    return Number.isInteger(page) && page > 0 ? page : null;
  }
  return null;
}
