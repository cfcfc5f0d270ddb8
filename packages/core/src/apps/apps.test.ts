import { existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServerItem } from "../servers/entity.ts";
import { serverKey } from "../servers/entity.ts";
import { appReaches, ownerWithServer, type TestClient, testClient } from "../testing/http.ts";
import { startTestSshServer, type TestSshServer } from "../testing/ssh-server.ts";
import { eventually, startWorkers } from "../testing/workers.ts";
import { autoStopScheduleName } from "./lifecycle.ts";

type Json = Record<string, unknown>;
let t: TestClient;
let ssh: TestSshServer;
let token: string;
let otherToken: string;
let userId: string;
let workers: Awaited<ReturnType<typeof startWorkers>>;
let serverId: string;
let projectId: string;

const post = (path: string, body?: unknown, as = token) => t.json<Json>("POST", path, { token: as, body });
const get = (path: string, as = token) => t.json<Json>("GET", path, { token: as });

beforeAll(async () => {
  t = await testClient({
    HOIST_STATUS_SWEEP_SECONDS: "0",
    HOIST_SSH_CONNECT_TIMEOUT_SECONDS: "3",
    HOIST_SSH_COMMAND_TIMEOUT_SECONDS: "3",
  });
  workers = await startWorkers(t.deps);
  ssh = await startTestSshServer();
  ({ token, userId, serverId, projectId } = await ownerWithServer(t, ssh, "alice"));
  otherToken = (await t.register("mallory")).token;
});

afterAll(async () => {
  await workers?.stop();
  await ssh?.stop();
});

/** A directory on the "server" for an app, and the app itself. */
async function makeApp(name: string, extra: Json = {}) {
  const dir = join(ssh.cwd, name);
  mkdirSync(dir, { recursive: true });
  const res = await post("/api/apps", {
    name,
    projectId,
    serverId,
    cdPath: dir,
    commands: { start: "echo started > started.txt && echo ok", stop: "rm -f started.txt && echo bye" },
    ...extra,
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return { id: res.body.id as string, dir };
}

const appStatus = (id: string, want: string) => appReaches(t, token, id, want);

describe("servers", () => {
  it("never returns credentials, and lists in both shapes", async () => {
    const one = await get(`/api/servers/${serverId}`);
    expect(one.body).toMatchObject({
      id: serverId,
      hasCredentials: true,
      status: "unknown",
      hostKeyFingerprint: null,
      runningAppsCount: 0,
    });
    expect(JSON.stringify(one.body)).not.toMatch(/PRIVATE KEY|privateKey|password/);
    const page = await get("/api/servers");
    expect(page.body).toMatchObject({ items: [expect.objectContaining({ id: serverId })], nextCursor: null });
    const array = await t.json<Json[]>("GET", "/api/servers?format=array", { token });
    expect(array.body.map((s) => s.id)).toEqual([serverId]);
    const raw = await t.deps.store.get<ServerItem>(serverKey(userId, serverId));
    expect(raw?.credentials).toMatch(/^hv1\./);
  });

  it("refuses a bad key or address with 400 and another user's server with 404", async () => {
    const bad = await post("/api/servers", { name: "x", address: "h", sshUser: "u", privateKey: "not a key" });
    expect(bad.status).toBe(400);
    const badAddr = await post("/api/servers", { name: "x", address: "a b;rm", sshUser: "u" });
    expect(badAddr.status).toBe(400);
    expect((await get(`/api/servers/${serverId}`, otherToken)).status).toBe(404);
    expect((await get(`/api/servers/${serverId}/status`, otherToken)).status).toBe(404);
    expect((await t.json("DELETE", `/api/servers/${serverId}`, { token: otherToken })).status).toBe(404);
  });

  it("checks status over SSH, pins the host key, and refuses a changed one until re-pinned", async () => {
    const status = await get(`/api/servers/${serverId}/status`);
    expect(status.body).toMatchObject({
      status: "online",
      runningContainers: 0,
      uptime: expect.any(Number),
      lastChecked: expect.any(Number),
    });
    expect((await get(`/api/servers/${serverId}`)).body).toMatchObject({
      status: "online",
      hostKeyFingerprint: ssh.hostKeyFingerprint,
    });

    await t.deps.store.update(serverKey(userId, serverId), { set: { hostKeyFingerprint: "SHA256:not-the-key" } });
    const mismatch = await get(`/api/servers/${serverId}/status`);
    expect(mismatch.status).toBe(409);
    expect(mismatch.body.detail).toMatch(/host key/i);
    const repinned = await t.json<Json>("PUT", `/api/servers/${serverId}`, {
      token,
      body: { hostKeyFingerprint: null },
    });
    expect(repinned.body.hostKeyFingerprint).toBeNull();
    expect((await get(`/api/servers/${serverId}/status`)).body.status).toBe("online");
  });

  it("says what failed: wrong key (auth) and a closed port (refused)", async () => {
    const other = await startTestSshServer();
    const wrongKey = await post("/api/servers", {
      name: "wrong",
      address: ssh.host,
      sshPort: ssh.port,
      sshUser: ssh.username,
      privateKey: other.clientKey.private,
    });
    await other.stop();
    const auth = await get(`/api/servers/${wrongKey.body.id}/status`);
    expect(auth.body).toMatchObject({ status: "offline", error: { kind: "auth" } });
    const closed = await post("/api/servers", {
      name: "gone",
      address: "127.0.0.1",
      sshPort: other.port,
      sshUser: "x",
      password: "pw-123456",
    });
    const refused = await get(`/api/servers/${closed.body.id}/status`);
    expect(refused.body).toMatchObject({ status: "offline", error: { kind: "refused" } });
    expect((await get(`/api/servers/${closed.body.id}`)).body).toMatchObject({
      status: "offline",
      lastError: { kind: "refused" },
    });
  });
});

describe("apps", () => {
  it("starts: .env written (0600) and the command run in cdPath; stops; all audited", async () => {
    const app = await makeApp("web");
    await t.json("PUT", `/api/apps/${app.id}/env`, {
      token,
      body: { SECRET: "s3cr3t value", GREETING: 'it\'s "quoted" $HOME' },
    });
    const started = await post(`/api/apps/${app.id}/start`, { timeout: 0 });
    expect(started.status).toBe(202);
    expect(started.body).toMatchObject({ success: true, appId: app.id, status: "starting" });
    const running = await appStatus(app.id, "running");
    expect(running.startedAt).toEqual(expect.any(Number));
    expect(running.stopsAt).toBeNull();
    expect(existsSync(join(app.dir, "started.txt"))).toBe(true);
    const dotenv = await readFile(join(app.dir, ".env"), "utf8");
    expect(dotenv).toContain("SECRET='s3cr3t value'");
    expect(statSync(join(app.dir, ".env")).mode & 0o777).toBe(0o600);
    expect(ssh.commands.at(-1)).not.toContain("s3cr3t");
    expect((await get(`/api/servers/${serverId}`)).body.runningAppsCount).toBe(1);

    expect((await post(`/api/apps/${app.id}/start`)).status).toBe(409);
    expect((await post(`/api/apps/${app.id}/stop`)).status).toBe(202);
    await appStatus(app.id, "stopped");
    expect(existsSync(join(app.dir, "started.txt"))).toBe(false);
    expect((await get(`/api/servers/${serverId}`)).body.runningAppsCount).toBe(0);
    expect((await get("/api/usage")).body).toMatchObject({ appRunningMinutes: 1 });

    const audit = await t.json<{ items: { action: string }[] }>(
      "GET",
      `/api/audit-logs?resourceType=app&resourceId=${app.id}`,
      { token },
    );
    expect(audit.body.items.map((i) => i.action)).toEqual(
      expect.arrayContaining(["app.create", "app.env_update", "app.start", "app.stop"]),
    );
  });

  it("runs the default docker compose commands with the app's env", async () => {
    const bin = join(ssh.cwd, "fake-bin");
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, "docker"), '#!/bin/sh\necho "docker $*" >> docker.log\n', { mode: 0o755 });
    const app = await makeApp("compose", { commands: null });
    await t.json("PUT", `/api/apps/${app.id}/env`, { token, body: { PATH: `${bin}:/usr/bin:/bin` } });
    await post(`/api/apps/${app.id}/start`);
    await appStatus(app.id, "running");
    await post(`/api/apps/${app.id}/stop`);
    await appStatus(app.id, "stopped");
    expect(await readFile(join(app.dir, "docker.log"), "utf8")).toBe("docker compose up -d\ndocker compose down\n");
  });

  it("lets only one of two racing starts win", async () => {
    const app = await makeApp("race");
    const [a, b] = await Promise.all([post(`/api/apps/${app.id}/start`), post(`/api/apps/${app.id}/start`)]);
    expect([a.status, b.status].sort()).toEqual([202, 409]);
    await appStatus(app.id, "running");
    await post(`/api/apps/${app.id}/stop`);
    await appStatus(app.id, "stopped");
  });

  it("records a failing command as error with its exit code and last lines", async () => {
    const app = await makeApp("broken", { commands: { start: "echo about to fail; echo boom >&2; exit 3" } });
    await post(`/api/apps/${app.id}/start`);
    const failed = await appStatus(app.id, "error");
    expect(failed.lastError).toMatchObject({ exitCode: 3, output: expect.arrayContaining(["about to fail", "boom"]) });
    expect((failed.lastError as Json).message).toMatch(/exited with 3/);
  });

  it("masks env values, every line of a multi-line one too, in the stored output of a failed command", async () => {
    const pem = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEF\nAASCBKcwggSjAgEAAoIBAQC7\n-----END KEY-----";
    const app = await makeApp("leaky", {
      commands: { start: 'echo "db=$DB_PASSWORD"; printf "%s\\n" "$TLS_KEY"; exit 4' },
    });
    await t.json("PUT", `/api/apps/${app.id}/env`, { token, body: { DB_PASSWORD: "hunter2-secret", TLS_KEY: pem } });
    await post(`/api/apps/${app.id}/start`);
    const failed = await appStatus(app.id, "error");
    const output = (failed.lastError as { output: string[] }).output;
    expect(output).toContain("db=••••");
    expect(output).toContain("••••");
    expect(JSON.stringify(failed)).not.toMatch(/hunter2|MIIEvQ|AASCBK|BEGIN KEY/);
  });

  it("kills a command that hangs past the timeout and says so", async () => {
    const app = await makeApp("hang", { commands: { start: "sleep 30" } });
    await post(`/api/apps/${app.id}/start`);
    const failed = await appStatus(app.id, "error");
    expect((failed.lastError as Json).message).toMatch(/timed out/i);
    await eventually(async () => ssh.liveCommands().length === 0, 5000, "the hung command to be killed");
  });

  it("passes paths and names with shell metacharacters safely", async () => {
    const app = await makeApp("we ird $(touch pwned) `id`; 'x'", {
      commands: { start: "pwd > where.txt", stop: "true" },
    });
    await t.json("PUT", `/api/apps/${app.id}/env`, { token, body: { EVIL: "$(touch pwned2)`touch pwned3`" } });
    await post(`/api/apps/${app.id}/start`);
    await appStatus(app.id, "running");
    expect((await readFile(join(app.dir, "where.txt"), "utf8")).trim()).toBe(app.dir);
    for (const f of ["pwned", "pwned2", "pwned3"]) {
      expect(existsSync(join(ssh.cwd, f))).toBe(false);
      expect(existsSync(join(app.dir, f))).toBe(false);
    }
    await post(`/api/apps/${app.id}/stop`);
    await appStatus(app.id, "stopped");
  });

  it("keeps tenants apart and validates input", async () => {
    const app = await makeApp("private");
    for (const [m, p] of [
      ["GET", `/api/apps/${app.id}`],
      ["POST", `/api/apps/${app.id}/start`],
      ["GET", `/api/apps/${app.id}/env`],
      ["DELETE", `/api/apps/${app.id}`],
    ] as const) {
      expect((await t.call(m, p, { token: otherToken })).status).toBe(404);
    }
    const noProject = await post("/api/apps", { name: "x", projectId: "prj_nope", serverId, cdPath: "/srv/x" });
    expect(noProject.status).toBe(400);
    const otherProject = await post("/api/apps", { name: "x", projectId, serverId, cdPath: "/srv/x" }, otherToken);
    expect(otherProject.status).toBe(400);
    expect((await post("/api/apps", { name: "x", projectId, serverId, cdPath: "relative/path" })).status).toBe(400);
    expect(
      (await post("/api/apps", { name: "x", projectId, serverId, cdPath: "/x", autoStopTimeout: -1 })).status,
    ).toBe(400);
  });

  it("stores env vars encrypted, masks them, reveals them to the owner, and validates names and sizes", async () => {
    const app = await makeApp("envy");
    const put = await t.json("PUT", `/api/apps/${app.id}/env`, {
      token,
      body: { DATABASE_URL: "postgres://u:p@h/db", A: "1" },
    });
    expect(put.body).toEqual({ DATABASE_URL: "••••", A: "••••" });
    const patched = await t.json("PATCH", `/api/apps/${app.id}/env`, { token, body: { A: null, B: "2" } });
    expect(patched.body).toEqual({ DATABASE_URL: "••••", B: "••••" });
    expect((await get(`/api/apps/${app.id}/env`)).body).toEqual({ DATABASE_URL: "••••", B: "••••" });
    expect((await get(`/api/apps/${app.id}/env?reveal=true`)).body).toEqual({
      DATABASE_URL: "postgres://u:p@h/db",
      B: "2",
    });
    expect((await t.json("PUT", `/api/apps/${app.id}/env`, { token, body: { "1BAD": "x" } })).status).toBe(400);
    expect((await t.json("PUT", `/api/apps/${app.id}/env`, { token, body: { "A-B": "x" } })).status).toBe(400);
    expect((await t.json("PUT", `/api/apps/${app.id}/env`, { token, body: { BIG: "x".repeat(40_000) } })).status).toBe(
      400,
    );
    expect((await t.json("PUT", `/api/apps/${app.id}/env`, { token, body: { N: 5 } })).status).toBe(400);
  });
});

describe("auto-stop", () => {
  it("stops the app once when its time comes, and writes AUTO_STOP", async () => {
    const app = await makeApp("short");
    await post(`/api/apps/${app.id}/start`, { timeout: 0.02 });
    const running = await appStatus(app.id, "running");
    expect((running.stopsAt as number) - (running.startedAt as number)).toBe(1200);
    await appStatus(app.id, "stopped");
    const audit = await t.json<{ items: { action: string; details: Json }[] }>(
      "GET",
      `/api/audit-logs?resourceType=app&resourceId=${app.id}&action=AUTO_STOP`,
      { token },
    );
    expect(audit.body.items).toHaveLength(1);
    expect(audit.body.items[0]?.details).toMatchObject({ reason: "timeout" });
  });

  it("survives a runtime restart", async () => {
    const app = await makeApp("restart");
    await post(`/api/apps/${app.id}/start`, { timeout: 0.05 });
    await appStatus(app.id, "running");
    await workers.stop();
    workers = await startWorkers(t.deps);
    await appStatus(app.id, "stopped");
  });

  it("does nothing for a stale schedule of an earlier run", async () => {
    const app = await makeApp("stale");
    await post(`/api/apps/${app.id}/start`, { timeout: 0 });
    await appStatus(app.id, "running");
    await t.deps.scheduler.schedule(autoStopScheduleName(app.id), new Date(Date.now() + 100), {
      type: "auto-stop",
      ownerId: userId,
      appId: app.id,
      runId: "an-earlier-run",
    });
    await new Promise((r) => setTimeout(r, 1500));
    expect((await get(`/api/apps/${app.id}`)).body.status).toBe("running");
    await post(`/api/apps/${app.id}/stop`);
    await appStatus(app.id, "stopped");
  });

  it("extends: moves the stop time and the schedule", async () => {
    const app = await makeApp("extend");
    await post(`/api/apps/${app.id}/start`, { timeout: 0.02 });
    const running = await appStatus(app.id, "running");
    const extended = await post(`/api/apps/${app.id}/extend`, { minutes: 10 });
    expect(extended.status).toBe(200);
    expect(extended.body.stopsAt as number).toBeGreaterThan((running.stopsAt as number) + 9 * 60_000);
    await new Promise((r) => setTimeout(r, 2000));
    expect((await get(`/api/apps/${app.id}`)).body.status).toBe("running");
    await post(`/api/apps/${app.id}/stop`);
    await appStatus(app.id, "stopped");
  });
});

describe("deleting", () => {
  it("refuses to delete a server with apps, or a project with running apps unless forced", async () => {
    expect((await t.json("DELETE", `/api/servers/${serverId}`, { token })).status).toBe(409);
    const app = await makeApp("keepalive");
    await post(`/api/apps/${app.id}/start`);
    await appStatus(app.id, "running");
    expect((await t.json("DELETE", `/api/apps/${app.id}`, { token })).status).toBe(409);
    const refused = await t.json<Json>("DELETE", `/api/projects/${projectId}`, { token });
    expect(refused.status).toBe(409);
    expect(refused.body.detail).toMatch(/keepalive/);
    const forced = await t.json<Json>("DELETE", `/api/projects/${projectId}?force=true`, { token });
    expect(forced.status).toBe(200);
    expect(forced.body.leftRunning).toEqual([{ id: app.id, name: "keepalive" }]);
    expect((await get(`/api/apps/${app.id}`)).status).toBe(404);
    expect((await get(`/api/servers/${serverId}`)).body).toMatchObject({ runningAppsCount: 0 });
    expect((await t.json("DELETE", `/api/servers/${serverId}`, { token })).status).toBe(200);
  });
});
