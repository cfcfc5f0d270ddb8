import createClient, { type Client, type ClientOptions } from "openapi-fetch";
import type { components, paths } from "./schema.ts";

export type { components, paths } from "./schema.ts";
export type Schemas = components["schemas"];
export type Problem = Schemas["Problem"];
export type HoistClient = Client<paths>;

export interface HoistClientOptions {
  /** Where Hoist is, e.g. `http://127.0.0.1:3000`. */
  baseUrl: string;
  /** A bearer token (access token or API token), or a function answering the current one on each request. */
  token?: string | (() => string | undefined);
  /** Defaults to the global `fetch`. */
  fetch?: ClientOptions["fetch"];
}

/** A client typed by the committed OpenAPI document: paths, parameters, bodies and answers are checked. */
export function createHoistClient({ baseUrl, token, fetch }: HoistClientOptions): HoistClient {
  const client = createClient<paths>({ baseUrl, ...(fetch ? { fetch } : {}) });
  if (token !== undefined) {
    const current = typeof token === "function" ? token : () => token;
    client.use({
      onRequest({ request }) {
        const value = current();
        if (value) request.headers.set("Authorization", `Bearer ${value}`);
        return request;
      },
    });
  }
  return client;
}

/** A non-2xx answer, with its problem details (RFC 9457) when the body has them. */
export class HoistApiError extends Error {
  override name = "HoistApiError";
  readonly status: number;
  readonly type: string;
  readonly title: string;
  readonly detail: string;
  readonly errors: NonNullable<Problem["errors"]>;
  readonly requestId: string | undefined;

  constructor(status: number, problem: Partial<Problem>, fallback: string) {
    const detail = problem.detail ?? fallback;
    super(`${status} ${problem.title ?? "Error"}: ${detail}`);
    this.status = status;
    this.type = problem.type ?? "about:blank";
    this.title = problem.title ?? "Error";
    this.detail = detail;
    this.errors = problem.errors ?? [];
    this.requestId = problem.requestId;
  }
}

const isProblem = (body: unknown): body is Partial<Problem> =>
  typeof body === "object" && body !== null && typeof (body as { title?: unknown }).title === "string";

/**
 * The data of a 2xx answer; any other answer is thrown as a `HoistApiError`:
 * `const project = await orThrow(client.POST("/api/projects", { body: { name: "shop" } }))`.
 */
export async function orThrow<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await call;
  if (response.ok) return data as T;
  const fallback = typeof error === "string" && error ? error : response.statusText || `HTTP ${response.status}`;
  throw new HoistApiError(
    response.status,
    isProblem(error) ? error : { title: response.statusText || undefined },
    fallback,
  );
}
