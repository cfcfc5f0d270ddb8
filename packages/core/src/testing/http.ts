import { createHttpApp } from "../http/app.ts";
import type { Deps } from "../ports.ts";
import { testDeps } from "./deps.ts";
import { eventually } from "./workers.ts";

export interface CallOptions {
  body?: unknown;
  token?: string;
  headers?: Record<string, string>;
  /** The client address the app sees (as the Node adapter reports it). */
  ip?: string;
}

export interface TestClient {
  deps: Deps;
  app: ReturnType<typeof createHttpApp>;
  call(method: string, path: string, opts?: CallOptions): Promise<Response>;
  json<T = Record<string, unknown>>(
    method: string,
    path: string,
    opts?: CallOptions,
  ): Promise<{ status: number; body: T; res: Response }>;
  register(
    username: string,
    password?: string,
  ): Promise<{ token: string; refreshToken: string; expiresIn: number; user: { id: string; role: string } }>;
}

export const STRONG_PASSWORD = "correct horse battery staple";

/** The real app over a fresh table, called through `app.request()` with JSON bodies. Rate limits off unless given. */
export async function testClient(env: Record<string, string> = {}): Promise<TestClient> {
  const deps = await testDeps({ HOIST_RATE_LIMIT_AUTH: "0", HOIST_RATE_LIMIT_API: "0", ...env });
  const app = createHttpApp(deps);
  const call: TestClient["call"] = (method, path, opts = {}) => {
    const headers: Record<string, string> = { ...opts.headers };
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body);
      headers["content-type"] ??= "application/json";
      headers["content-length"] ??= String(Buffer.byteLength(body));
    }
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    const env = { incoming: { socket: { remoteAddress: opts.ip ?? "127.0.0.1" } } };
    return Promise.resolve(app.request(path, { method, headers, body }, env));
  };
  const json: TestClient["json"] = async (method, path, opts) => {
    const res = await call(method, path, opts);
    return { status: res.status, body: (await res.json()) as never, res };
  };
  const register: TestClient["register"] = async (username, password = STRONG_PASSWORD) => {
    const { status, body } = await json<{
      token: string;
      refreshToken: string;
      expiresIn: number;
      user: { id: string; role: string };
    }>("POST", "/api/auth/register", { body: { username, email: `${username}@example.com`, password } });
    if (status !== 201) throw new Error(`register ${username}: ${status} ${JSON.stringify(body)}`);
    return body;
  };
  return { deps, app, call, json, register };
}

/** A user with a server on `ssh` (the loopback test SSH server) and a project: the setup app and deploy tests share. */
export async function ownerWithServer(
  t: TestClient,
  ssh: { host: string; port: number; username: string; clientKey: { private: string } },
  username: string,
) {
  const { token, user } = await t.register(username);
  const server = await t.json<{ id: string }>("POST", "/api/servers", {
    token,
    body: {
      name: "box",
      address: ssh.host,
      sshPort: ssh.port,
      sshUser: ssh.username,
      privateKey: ssh.clientKey.private,
    },
  });
  const project = await t.json<{ id: string }>("POST", "/api/projects", {
    token,
    body: { name: `${username}'s project` },
  });
  if (server.status !== 201 || project.status !== 201)
    throw new Error(`setup failed: ${server.status} ${project.status}`);
  return { token, userId: user.id, serverId: server.body.id, projectId: project.body.id };
}

type Json = Record<string, unknown>;

/** Polls `GET /api/deployments/:id` until the deployment has ended; answers it. */
export function deploymentEnded<T extends { status: string } = Json & { status: string }>(
  t: TestClient,
  token: string,
  id: string,
  timeoutMs = 15_000,
): Promise<T> {
  return eventually(
    async () => {
      const { body } = await t.json<T>("GET", `/api/deployments/${id}`, { token });
      return ["succeeded", "failed", "cancelled"].includes(body.status) ? body : undefined;
    },
    timeoutMs,
    `deployment ${id} to finish`,
  );
}

/** Polls `GET /api/apps/:id` until the app has `status`; answers it. */
export function appReaches(t: TestClient, token: string, id: string, status: string, timeoutMs = 10_000) {
  return eventually(
    async () => {
      const { body } = await t.json<Json>("GET", `/api/apps/${id}`, { token });
      return body.status === status ? body : undefined;
    },
    timeoutMs,
    `app ${id} to be ${status}`,
  );
}
