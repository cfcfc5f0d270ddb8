import { createHmac, randomBytes, randomUUID } from "node:crypto";

type Json = Record<string, unknown>;

/** GitHub's `X-Hub-Signature-256` of `body` under `secret`. */
export const signDelivery = (body: string, secret: string) =>
  `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;

/** A random 40-hex commit SHA. */
export const randomSha = () => randomBytes(20).toString("hex");

/** A minimal push of `sha` to `branch` of a repository, as GitHub sends it. */
export function pushEvent(repo: { fullName: string; id?: number }, opts: { branch?: string; sha?: string } = {}): Json {
  return {
    ref: `refs/heads/${opts.branch ?? "main"}`,
    after: opts.sha ?? randomSha(),
    repository: { ...(repo.id === undefined ? {} : { id: repo.id }), full_name: repo.fullName },
    head_commit: { message: "change", author: { name: "octo" } },
  };
}

export interface Delivery {
  /** A payload object or the raw text sent. */
  body: unknown;
  /** Signs the raw body with it, unless `signature` is given. */
  secret?: string;
  /** The signature header as sent (null: none). */
  signature?: string | null;
  /** `X-GitHub-Event` (default `push`; null: none). */
  event?: string | null;
  /** `X-GitHub-Delivery` (default: a new UUID; null: none). */
  id?: string | null;
  headers?: Record<string, string>;
  /** The hook's path (default `/api/webhooks/github`). */
  path?: string;
  /** The client address the app sees. */
  ip?: string;
}

/** Anything that answers a Request like Hono's `app.request` (the app itself, or a test client's). */
interface Requester {
  request(path: string, init: RequestInit, env?: unknown): Response | Promise<Response>;
}

/** Posts one GitHub webhook delivery to `app` and reads the JSON answer. */
export async function postDelivery<T = Json>(
  app: Requester,
  d: Delivery,
): Promise<{ status: number; body: T; res: Response }> {
  const raw = typeof d.body === "string" ? d.body : JSON.stringify(d.body);
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(raw)),
    ...d.headers,
  };
  if (d.event !== null) headers["x-github-event"] = d.event ?? "push";
  if (d.id !== null) headers["x-github-delivery"] = d.id ?? randomUUID();
  const signature = d.signature === undefined && d.secret !== undefined ? signDelivery(raw, d.secret) : d.signature;
  if (signature) headers["x-hub-signature-256"] = signature;
  const res = await app.request(
    d.path ?? "/api/webhooks/github",
    { method: "POST", headers, body: raw },
    { incoming: { socket: { remoteAddress: d.ip ?? "127.0.0.1" } } },
  );
  return { status: res.status, body: (await res.json()) as T, res };
}
