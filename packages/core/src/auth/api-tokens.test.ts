import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broadcaster } from "../ports.ts";
import { createWsHandler } from "../realtime/ws-handler.ts";
import { ownerWithServer, type TestClient, testClient } from "../testing/http.ts";
import { startTestSshServer, type TestSshServer } from "../testing/ssh-server.ts";
import { type ApiTokenItem, type ApiTokenRefItem, apiTokenKeys } from "./api-token-entity.ts";

type Json = Record<string, unknown>;
type Minted = {
  id: string;
  name: string;
  scopes: string[];
  createdAt: number;
  expiresAt: number | null;
  token: string;
};
const SHA = "0123456789abcdef0123456789abcdef01234567";
const hash = (secret: string) => createHash("sha256").update(secret).digest("base64url");

let t: TestClient;
let ssh: TestSshServer;
/** The first user: an admin. */
let admin: { token: string; id: string };
/** A member with a server, a project and an app. */
let owner: { token: string; id: string; appId: string; serverId: string; projectId: string };
let mallory: { token: string; id: string };

beforeAll(async () => {
  // The operator's global webhook secret: admins may bind a repository by name.
  t = await testClient({ HOIST_STATUS_SWEEP_SECONDS: "0", HOIST_GITHUB_WEBHOOK_SECRET: "tokens-test-secret" });
  const root = await t.register("root");
  admin = { token: root.token, id: root.user.id };
  ssh = await startTestSshServer();
  const o = await ownerWithServer(t, ssh, "olivia");
  const dir = join(ssh.cwd, "web");
  mkdirSync(dir, { recursive: true });
  const app = await t.json<Json>("POST", "/api/apps", {
    token: o.token,
    body: { name: "web", projectId: o.projectId, serverId: o.serverId, cdPath: dir },
  });
  expect(app.status, JSON.stringify(app.body)).toBe(201);
  owner = { token: o.token, id: o.userId, appId: app.body.id as string, serverId: o.serverId, projectId: o.projectId };
  const m = await t.register("mallory");
  mallory = { token: m.token, id: m.user.id };
});
afterAll(async () => {
  await ssh?.stop();
});

/** POST /api/tokens as `as` (a session or another token). */
async function mint(as: string, scopes: string[], extra: Json = {}) {
  return t.json<Minted & Json>("POST", "/api/tokens", {
    token: as,
    body: { name: `t-${scopes.join("-")}`, scopes, ...extra },
  });
}
async function minted(as: string, scopes: string[], extra: Json = {}): Promise<Minted> {
  const res = await mint(as, scopes, extra);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}
const deploy = (token: string) =>
  t.json<Json>("POST", `/api/apps/${owner.appId}/deployments`, { token, body: { sha: SHA } });

describe("API tokens", () => {
  it("are created with their secret answered once, listed without it, and revoked", async () => {
    const res = await mint(owner.token, ["read", "deploy"], { name: "ci", expiresInDays: 30 });
    expect(res.status).toBe(201);
    const created = res.body;
    expect(Object.keys(created).sort()).toEqual(["createdAt", "expiresAt", "id", "name", "scopes", "token"]);
    expect(created).toMatchObject({ id: expect.stringMatching(/^tok_[A-Za-z0-9_-]{22}$/), name: "ci" });
    expect(created.scopes).toEqual(["read", "deploy"]);
    expect(created.token).toMatch(/^hst_[A-Za-z0-9_-]{43}$/); // 256 bits
    expect(created.expiresAt).toBeGreaterThan(created.createdAt + 30 * 86_400_000 - 1000);
    expect(created.expiresAt).toBeLessThanOrEqual(created.createdAt + 30 * 86_400_000);

    const list = await t.json<{ items: Json[]; nextCursor: string | null }>("GET", "/api/tokens", {
      token: owner.token,
    });
    expect(list.status).toBe(200);
    expect(list.body.items).toContainEqual({
      id: created.id,
      name: "ci",
      scopes: ["read", "deploy"],
      createdAt: created.createdAt,
      lastUsedAt: null,
      expiresAt: created.expiresAt,
    });
    expect(list.body.nextCursor).toBeNull();
    expect(JSON.stringify(list.body)).not.toContain(created.token);
    const paged = await t.json<{ items: Json[]; nextCursor: string | null }>("GET", "/api/tokens?limit=1", {
      token: owner.token,
    });
    expect(paged.body.items).toHaveLength(1);

    // Only the hash is stored: the item is found by it, and neither item holds the secret.
    const item = await t.deps.store.get<ApiTokenItem>(apiTokenKeys.secret(hash(created.token)));
    const ref = await t.deps.store.get<ApiTokenRefItem>(apiTokenKeys.ref(owner.id, created.id));
    expect(item).toMatchObject({ id: created.id, userId: owner.id });
    expect(ref?.tokenHash).toBe(hash(created.token));
    expect(JSON.stringify([item, ref])).not.toContain(created.token);
    expect(JSON.stringify([item, ref])).not.toContain(created.token.slice(4));

    expect((await t.json("DELETE", `/api/tokens/${created.id}`, { token: owner.token })).status).toBe(200);
    const after = await t.json<{ items: Json[] }>("GET", "/api/tokens", { token: owner.token });
    expect(after.body.items.map((i) => i.id)).not.toContain(created.id);
    expect(await t.deps.store.get(apiTokenKeys.secret(hash(created.token)))).toBeUndefined();
    expect((await t.json("DELETE", `/api/tokens/${created.id}`, { token: owner.token })).status).toBe(404);
  });

  it("refuses bad input: no scopes, an unknown scope, a foreign id", async () => {
    expect((await mint(owner.token, [])).status).toBe(400);
    expect((await mint(owner.token, ["root"])).status).toBe(400);
    expect((await mint(owner.token, ["read"], { expiresInDays: 0 })).status).toBe(400);
    expect((await t.json("DELETE", "/api/tokens/usr_abc", { token: owner.token })).status).toBe(400);
  });

  it("work as Bearer tokens; a read token reads but cannot deploy (403 naming the scope)", async () => {
    const read = await minted(owner.token, ["read"]);
    const apps = await t.json<{ items: Json[] }>("GET", "/api/apps", { token: read.token });
    expect(apps.status).toBe(200);
    expect(apps.body.items.map((a) => a.id)).toContain(owner.appId);
    expect((await t.json("GET", "/api/auth/verify", { token: read.token })).body).toMatchObject({
      user: { id: owner.id },
    });

    const refused = await deploy(read.token);
    expect(refused.status).toBe(403);
    expect(refused.res.headers.get("content-type")).toContain("application/problem+json");
    expect(refused.body.detail).toContain('"deploy" scope');
    // Revealing env values is not a plain read.
    const reveal = await t.json<Json>("GET", `/api/apps/${owner.appId}/env?reveal=true`, { token: read.token });
    expect(reveal.status).toBe(403);
    expect(reveal.body.detail).toContain('"write" scope');
    expect((await t.json("GET", `/api/apps/${owner.appId}/env`, { token: read.token })).status).toBe(200);
  });

  it("a deploy token deploys but cannot create a server or a project", async () => {
    const dep = await minted(owner.token, ["deploy"]);
    const queued = await deploy(dep.token);
    expect(queued.status, JSON.stringify(queued.body)).toBe(202);
    const server = await t.json<Json>("POST", "/api/servers", {
      token: dep.token,
      body: { name: "x", address: "example.com", sshUser: "u" },
    });
    expect(server.status).toBe(403);
    expect(server.body.detail).toContain('"write" scope');
    expect((await t.json("POST", "/api/projects", { token: dep.token, body: { name: "p" } })).status).toBe(403);
    // Nor mint a write token.
    expect((await mint(dep.token, ["write"])).status).toBe(403);
    expect((await t.json("GET", "/api/servers", { token: dep.token })).status).toBe(200);
  });

  it("a write token does what its owner may; tokens of tokens hold no more than they have", async () => {
    const write = await minted(owner.token, ["write"]);
    expect((await t.json("POST", "/api/projects", { token: write.token, body: { name: "by token" } })).status).toBe(
      201,
    );
    const child = await minted(write.token, ["read"]);
    expect((await t.json("GET", "/api/projects", { token: child.token })).status).toBe(200);
    // A token does not sign out: it is revoked.
    const logout = await t.json<Json>("POST", "/api/auth/logout", { token: write.token });
    expect(logout.status).toBe(400);
    expect(logout.body.detail).toContain("DELETE /api/tokens");
  });

  it("a revoked token is refused on the very next request, over HTTP and at WebSocket connect", async () => {
    const tok = await minted(owner.token, ["read"]);
    expect((await t.call("GET", "/api/apps", { token: tok.token })).status).toBe(200);
    expect((await t.call("DELETE", `/api/tokens/${tok.id}`, { token: owner.token })).status).toBe(200);
    expect((await t.call("GET", "/api/apps", { token: tok.token })).status).toBe(401);
    const ws = createWsHandler(t.deps);
    const connect = await ws({
      requestContext: { routeKey: "$connect", connectionId: "conn-revoked" },
      queryStringParameters: { token: tok.token },
    });
    expect(connect.statusCode).toBe(401);
  });

  it("an expired token, an unknown one, a malformed one and a disabled user's are 401", async () => {
    const tok = await minted(owner.token, ["read"], { expiresInDays: 1 });
    expect((await t.call("GET", "/api/apps", { token: tok.token })).status).toBe(200);
    await t.deps.store.update(apiTokenKeys.secret(hash(tok.token)), {
      set: { expiresAt: Math.floor(Date.now() / 1000) - 1 },
    });
    expect((await t.call("GET", "/api/apps", { token: tok.token })).status).toBe(401);
    expect((await t.call("GET", "/api/apps", { token: `hst_${"A".repeat(43)}` })).status).toBe(401);
    expect((await t.call("GET", "/api/apps", { token: "hst_short" })).status).toBe(401);

    const dana = await t.register("dana");
    const hers = await minted(dana.token, ["write"]);
    expect((await t.call("GET", "/api/apps", { token: hers.token })).status).toBe(200);
    const disabled = await t.json("PATCH", `/api/users/${dana.user.id}`, {
      token: admin.token,
      body: { disabled: true },
    });
    expect(disabled.status).toBe(200);
    expect((await t.call("GET", "/api/apps", { token: hers.token })).status).toBe(401);
  });

  it("another tenant's token gets 404 on this tenant's resources and tokens", async () => {
    const theirs = await minted(mallory.token, ["write"]);
    const mine = await minted(owner.token, ["read"]);
    expect((await t.call("GET", `/api/apps/${owner.appId}`, { token: theirs.token })).status).toBe(404);
    expect((await deploy(theirs.token)).status).toBe(404);
    expect((await t.call("DELETE", `/api/tokens/${mine.id}`, { token: theirs.token })).status).toBe(404);
    const list = await t.json<{ items: Json[] }>("GET", "/api/tokens", { token: theirs.token });
    expect(list.body.items.map((i) => i.id)).not.toContain(mine.id);
    expect((await t.call("GET", "/api/apps", { token: mine.token })).status).toBe(200);
  });

  it("only an admin grants the admin scope, and admin routes need it", async () => {
    const denied = await mint(owner.token, ["admin"]);
    expect(denied.status).toBe(403);
    expect(denied.body.detail).toContain('"admin" scope');

    const adminToken = await minted(admin.token, ["admin"]);
    expect((await t.call("GET", "/api/users", { token: adminToken.token })).status).toBe(200);
    const writeToken = await minted(admin.token, ["write"]);
    const users = await t.json<Json>("GET", "/api/users", { token: writeToken.token });
    expect(users.status).toBe(403);
    expect(users.body.detail).toContain('"admin" scope');
    // A token without `admin` cannot mint one with it, even an admin's.
    expect((await mint(writeToken.token, ["admin"])).status).toBe(403);
    // An admin's token without `admin` reads the audit log as a member does: its own entries only.
    const audit = await t.json<{ items: { userId: string }[] }>("GET", "/api/audit-logs?limit=100", {
      token: writeToken.token,
    });
    expect(audit.status).toBe(200);
    expect(new Set(audit.body.items.map((e) => e.userId))).toEqual(new Set([admin.id]));
  });

  it("are audited when created, used for a mutation and revoked; never with the secret", async () => {
    const tok = await minted(owner.token, ["write"]);
    expect((await t.call("POST", "/api/projects", { token: tok.token, body: { name: "audited" } })).status).toBe(201);
    expect((await t.call("GET", "/api/projects", { token: tok.token })).status).toBe(200);
    expect((await t.call("DELETE", `/api/tokens/${tok.id}`, { token: owner.token })).status).toBe(200);
    const audit = await t.json<{ items: { action: string; userId: string; details: Json; ipAddress: string }[] }>(
      "GET",
      `/api/audit-logs?resourceType=api-token&resourceId=${tok.id}`,
      { token: owner.token },
    );
    expect(audit.body.items.map((e) => e.action).sort()).toEqual(["token.create", "token.revoke", "token.use"]);
    const use = audit.body.items.find((e) => e.action === "token.use");
    expect(use).toMatchObject({ userId: owner.id, details: { method: "POST", path: "/api/projects", status: 201 } });
    expect(JSON.stringify(audit.body)).not.toContain(tok.token);
  });

  it("record when they were last used, in the background, at most once a minute", async () => {
    const tok = await minted(owner.token, ["read"]);
    await t.deps.usage.flush(); // what earlier tests left
    const before = Date.now();
    expect((await t.call("GET", "/api/apps", { token: tok.token })).status).toBe(200);
    // Not written on the request's path: pending in the meter until its flush.
    expect(t.deps.usage.pendingStamps()).toBe(1);
    await t.deps.usage.flush();
    const lastUsed = async () =>
      (await t.json<{ items: Json[] }>("GET", "/api/tokens?limit=100", { token: owner.token })).body.items.find(
        (i) => i.id === tok.id,
      )?.lastUsedAt as number;
    const first = await lastUsed();
    expect(first).toBeGreaterThanOrEqual(before);
    // Within the minute: no new write.
    expect((await t.call("GET", "/api/apps", { token: tok.token })).status).toBe(200);
    expect(t.deps.usage.pendingStamps()).toBe(0);
    expect(await lastUsed()).toBe(first);
  });
});

describe("API tokens on the WebSocket", () => {
  const sent: { connectionId: string; message: Json }[] = [];
  const broadcaster: Broadcaster = {
    post: async (connectionId, message) => {
      sent.push({ connectionId, message: message as Json });
      return "sent";
    },
    close: async () => undefined,
  };
  const handler = () => createWsHandler({ ...t.deps, broadcaster });
  const connect = (connectionId: string, token: string) =>
    handler()({ requestContext: { routeKey: "$connect", connectionId }, queryStringParameters: { token } });
  async function subscribe(connectionId: string, channel: string) {
    sent.length = 0;
    await handler()({
      requestContext: { routeKey: "$default", connectionId },
      body: JSON.stringify({ action: "subscribe", channel }),
    });
    return sent.find((s) => s.connectionId === connectionId)?.message;
  }

  it("connects with ?token=hst_…, reads the owner's channels, and logs:all only with the admin scope", async () => {
    const read = await minted(owner.token, ["read"]);
    expect((await connect("conn-read", read.token)).statusCode).toBe(200);
    expect(await subscribe("conn-read", `app:${owner.appId}`)).toMatchObject({ type: "subscribed" });
    expect(await subscribe("conn-read", "app:app_someoneelse")).toMatchObject({ type: "error" });

    const adminWrite = await minted(admin.token, ["write"]);
    expect((await connect("conn-admin-write", adminWrite.token)).statusCode).toBe(200);
    expect(await subscribe("conn-admin-write", "logs:all")).toMatchObject({ type: "error" });
    // Another user's usage is an admin's read too: not through a token without `admin`.
    expect(await subscribe("conn-admin-write", `usage:${owner.id}`)).toMatchObject({ type: "error" });
    expect(await subscribe("conn-admin-write", `usage:${admin.id}`)).toMatchObject({ type: "subscribed" });
    const adminAll = await minted(admin.token, ["admin"]);
    expect((await connect("conn-admin", adminAll.token)).statusCode).toBe(200);
    expect(await subscribe("conn-admin", "logs:all")).toMatchObject({ type: "subscribed", channel: "logs:all" });
    expect(await subscribe("conn-admin", `usage:${owner.id}`)).toMatchObject({ type: "subscribed" });

    expect((await t.call("DELETE", `/api/tokens/${read.id}`, { token: owner.token })).status).toBe(200);
    expect((await connect("conn-read-2", read.token)).statusCode).toBe(401);
  });
});

describe("admin rights through a token", () => {
  it("binds a repository by name only for an admin acting as one: a session or an `admin` token, not a `write` token", async () => {
    const server = await t.json<Json>("POST", "/api/servers", {
      token: admin.token,
      body: {
        name: "admin-box",
        address: ssh.host,
        sshPort: ssh.port,
        sshUser: ssh.username,
        privateKey: ssh.clientKey.private,
      },
    });
    const project = await t.json<Json>("POST", "/api/projects", { token: admin.token, body: { name: "by name" } });
    const app = (as: string, name: string) =>
      t.json<Json>("POST", "/api/apps", {
        token: as,
        body: {
          name,
          projectId: project.body.id,
          serverId: server.body.id,
          cdPath: join(ssh.cwd, name),
          repository: { fullName: "octo/by-name", branch: "main", autoDeploy: true, deployOn: "push" },
        },
      });
    const write = await minted(admin.token, ["write"]);
    const refused = await app(write.token, "by-write-token");
    expect(refused.status, JSON.stringify(refused.body)).toBe(400);
    expect(refused.body.detail).toContain("not a repository you connected");
    expect((await app(admin.token, "by-session")).status).toBe(201);
    const full = await minted(admin.token, ["admin"]);
    expect((await app(full.token, "by-admin-token")).status).toBe(201);
  });
});
