import { mkdirSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { channelPk, subscriptionKey } from "@hoist/core/realtime/publish";
import { fetchApi } from "@hoist/core/testing/fetch-api";
import { startTestSshServer, type TestSshServer } from "@hoist/core/testing/ssh-server";
import { eventually } from "@hoist/core/testing/workers";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import WebSocket from "ws";
import type { Runtime } from "./runtime.ts";
import { startTestRuntime } from "./testing/test-runtime.ts";

type Json = Record<string, unknown>;
type Line = { seq: number; line: string; stream: string };
let runtime: Runtime;
let ssh: TestSshServer;
let admin: { token: string; id: string };
let member: { token: string; id: string };
let appId: string;
let appDir: string;

const api = fetchApi(() => runtime.url);

async function register(username: string) {
  const res = await api<{ token: string; user: { id: string } }>("POST", "/api/auth/register", undefined, {
    username,
    email: `${username}@example.com`,
    password: "correct horse battery staple",
  });
  return { token: res.body.token, id: res.body.user.id };
}

/** A real `ws` client that collects what it receives. */
class Client {
  readonly messages: Json[] = [];
  readonly socket: WebSocket;
  private constructor(socket: WebSocket) {
    this.socket = socket;
    socket.on("message", (d) => this.messages.push(JSON.parse(d.toString()) as Json));
  }
  static open(token: string): Promise<Client> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(`${runtime.wsUrl}?token=${encodeURIComponent(token)}`);
      socket.once("open", () => resolve(new Client(socket)));
      socket.once("error", reject);
      socket.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
  }
  send(message: Json) {
    this.socket.send(JSON.stringify(message));
  }
  async subscribe(channel: string, since?: number) {
    this.send({ action: "subscribe", channel, ...(since === undefined ? {} : { since }) });
    return eventually(
      async () => this.messages.find((m) => m.channel === channel || m.type === "error"),
      5000,
      `reply to subscribe ${channel}`,
    );
  }
  lines(deploymentId: string): Line[] {
    return this.messages
      .filter((m) => m.type === "log" && m.deploymentId === deploymentId)
      .flatMap((m) => m.lines as Line[]);
  }
}

beforeAll(async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "hoist-rt-"));
  runtime = await startTestRuntime({ name: "rt", dataDir: dataDir, dynamoEndpoint: inject("dynamoEndpoint") });
  ssh = await startTestSshServer();
  admin = await register("root");
  member = await register("mia");
  const server = await api("POST", "/api/servers", member.token, {
    name: "box",
    address: ssh.host,
    sshPort: ssh.port,
    sshUser: ssh.username,
    privateKey: ssh.clientKey.private,
  });
  const project = await api("POST", "/api/projects", member.token, { name: "p" });
  appDir = join(ssh.cwd, "app");
  mkdirSync(appDir);
  const app = await api("POST", "/api/apps", member.token, {
    name: "live",
    projectId: project.body.id,
    serverId: server.body.id,
    cdPath: appDir,
    commands: {
      start: "echo up",
      stop: "echo down",
      deploy:
        'i=1; while [ $i -le 1500 ]; do echo "line $i"; i=$((i+1)); if [ $((i % 300)) -eq 0 ]; then sleep 0.2; fi; done',
    },
  });
  appId = app.body.id as string;
}, 60_000);

afterAll(async () => {
  await ssh?.stop();
  await runtime?.stop();
});

const deploy = async () =>
  (await api<{ deployment: { id: string } }>("POST", `/api/apps/${appId}/deployments`, member.token)).body.deployment
    .id;
const finished = (id: string) =>
  eventually(
    async () => {
      const d = await api<{ status: string }>("GET", `/api/deployments/${id}`, member.token);
      return ["succeeded", "failed", "cancelled"].includes(d.body.status) ? d.body : undefined;
    },
    30_000,
    "deployment to finish",
  );

describe("WebSocket API", () => {
  it("refuses a bad, expired or missing token before the socket opens", async () => {
    await expect(Client.open("not-a-token")).rejects.toThrow("HTTP 401");
    await expect(Client.open("")).rejects.toThrow("HTTP 401");
    const ok = await Client.open(member.token);
    ok.send({ action: "ping" });
    await eventually(async () => ok.messages.find((m) => m.type === "pong"), 3000, "pong");
    ok.send({ action: "dance" });
    await eventually(async () => ok.messages.find((m) => m.type === "error"), 3000, "error for a bad action");
    ok.socket.close();
  });

  it("refuses another tenant's deployment and app, and logs:all to members, with an error and no data", async () => {
    const id = await deploy();
    await finished(id);
    const other = await register("otto");
    const client = await Client.open(other.token);
    expect(await client.subscribe(`deployment:${id}`)).toMatchObject({ type: "error" });
    client.messages.length = 0;
    expect(await client.subscribe(`app:${appId}`)).toMatchObject({ type: "error" });
    client.messages.length = 0;
    expect(await client.subscribe("logs:all")).toMatchObject({ type: "error" });
    await new Promise((r) => setTimeout(r, 300));
    expect(client.messages.filter((m) => m.type === "log" || m.type === "status")).toEqual([]);
    client.socket.close();
  });

  it("replays the backlog then streams live lines, with no gap or duplicate at the seam", async () => {
    const early = await Client.open(member.token);
    const id = await deploy();
    await eventually(
      async () =>
        (await api<{ status: string }>("GET", `/api/deployments/${id}`, member.token)).body.status === "running",
      10_000,
      "running",
    );
    await early.subscribe(`deployment:${id}`);
    // Join while lines are being written.
    await eventually(
      async () =>
        (await api<{ items: unknown[] }>("GET", `/api/deployments/${id}/logs?limit=1000`, member.token)).body.items
          .length > 200,
      10_000,
      "some lines",
    );
    const late = await Client.open(member.token);
    await late.subscribe(`deployment:${id}`, 0);
    const resumed = await Client.open(member.token);
    await resumed.subscribe(`deployment:${id}`, 100);
    await finished(id);
    const total = (
      await api<{ items: Line[] }>("GET", `/api/deployments/${id}/logs?limit=1000&after=1000`, member.token)
    ).body.items.at(-1)?.seq as number;
    for (const [client, from] of [
      [early, 1],
      [late, 1],
      [resumed, 101],
    ] as const) {
      await eventually(async () => client.lines(id).at(-1)?.seq === total, 10_000, "all lines");
      expect(client.lines(id).map((l) => l.seq)).toEqual(Array.from({ length: total - from + 1 }, (_, i) => from + i));
    }
    expect(early.messages.some((m) => m.type === "status" && m.status === "succeeded")).toBe(true);
    for (const c of [early, late, resumed]) c.socket.close();
  });

  it("cleans up a client that vanished (410 Gone) while the others keep receiving", async () => {
    const a = await Client.open(member.token);
    const b = await Client.open(member.token);
    const id = await deploy();
    await a.subscribe(`deployment:${id}`);
    await b.subscribe(`deployment:${id}`);
    // A subscription whose connection is already gone (its socket died without a close), replayed and waiting for the worker.
    await runtime.deps.store.put({
      ...subscriptionKey("ghost-connection", `deployment:${id}`),
      entity: "subscription",
      connectionId: "ghost-connection",
      channel: `deployment:${id}`,
      userId: member.id,
      live: false,
      ready: true,
      sentUpTo: 0,
      subscribedAt: Date.now(),
      expiresAt: Math.floor(Date.now() / 1000) + 3600,
      gsi1pk: channelPk(`deployment:${id}`),
      gsi1sk: "ghost-connection",
    });
    b.socket.terminate();
    await finished(id);
    await eventually(
      async () => a.messages.some((m) => m.type === "status" && m.status === "succeeded"),
      10_000,
      "a to see the end",
    );
    expect(a.lines(id).length).toBeGreaterThan(1000);
    await eventually(
      async () => (await runtime.deps.store.get(subscriptionKey("ghost-connection", `deployment:${id}`))) === undefined,
      5000,
      "the ghost's subscription to be forgotten",
    );
    a.socket.close();
  });

  it("delivers every line to 200 subscribers of one deployment", async () => {
    const clients = await Promise.all(Array.from({ length: 200 }, () => Client.open(member.token)));
    const id = await deploy();
    await Promise.all(clients.map((c) => c.subscribe(`deployment:${id}`)));
    await finished(id);
    const total = (
      await api<{ items: Line[] }>("GET", `/api/deployments/${id}/logs?limit=1000&after=1000`, member.token)
    ).body.items.at(-1)?.seq as number;
    await eventually(
      async () => clients.every((c) => c.lines(id).at(-1)?.seq === total),
      30_000,
      "every client to get every line",
    );
    for (const c of clients) {
      const seqs = c.lines(id).map((l) => l.seq);
      expect(seqs.length).toBe(total);
      expect(new Set(seqs).size).toBe(total);
    }
    for (const c of clients) c.socket.close();
  }, 60_000);

  it("answers a subscribe with an out-of-range since with an error, and the socket keeps working", async () => {
    const c = await Client.open(member.token);
    c.send({ action: "subscribe", channel: `app:${appId}`, since: 99_999_999_990 });
    const error = await eventually(async () => c.messages.find((m) => m.type === "error"), 5000, "an error");
    expect(String(error.message)).toMatch(/since/);
    c.messages.length = 0;
    expect(await c.subscribe(`app:${appId}`)).toMatchObject({ type: "subscribed" });
    c.socket.close();
  });

  it("closes a user's sockets on logout and when disabled, and an admin's logs:all socket on demotion", async () => {
    const closed = (c: Client) =>
      c.socket.readyState === WebSocket.CLOSED || new Promise<boolean>((r) => c.socket.once("close", () => r(true)));
    const within = <T>(p: Promise<T> | T, what: string) =>
      Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what} stayed open`)), 5000))]);

    // Logout.
    const leaver = await register("leaver");
    const watching = await Client.open(leaver.token);
    await api("POST", "/api/auth/logout", leaver.token);
    await within(closed(watching), "the signed-out socket");
    expect(watching.messages.at(-1)).toMatchObject({ type: "error", message: "Signed out" });

    // Disable (by the admin).
    const dora = await register("dora");
    const doraSocket = await Client.open(dora.token);
    expect((await api("PATCH", `/api/users/${dora.id}`, admin.token, { disabled: true })).status).toBe(200);
    await within(closed(doraSocket), "the disabled user's socket");

    // Demotion: the logs:all socket closes; the same user's plain socket stays.
    const olga = await register("olga");
    expect((await api("PATCH", `/api/users/${olga.id}`, admin.token, { role: "admin" })).status).toBe(200);
    const ops = await Client.open(olga.token);
    expect(await ops.subscribe("logs:all")).toMatchObject({ type: "subscribed" });
    const plain = await Client.open(olga.token);
    expect((await api("PATCH", `/api/users/${olga.id}`, admin.token, { role: "member" })).status).toBe(200);
    await within(closed(ops), "the demoted admin's logs:all socket");
    expect(plain.socket.readyState).toBe(WebSocket.OPEN);
    plain.socket.close();
  });

  it("streams app status changes, and the request log to admins without bodies or tokens", async () => {
    // The deploys above left the app running (a successful deploy starts it): stop it first.
    await api("POST", `/api/apps/${appId}/stop`, member.token);
    await eventually(
      async () => (await api<{ status: string }>("GET", `/api/apps/${appId}`, member.token)).body.status === "stopped",
      10_000,
      "stopped before the test",
    );
    const watcher = await Client.open(member.token);
    await watcher.subscribe(`app:${appId}`);
    const ops = await Client.open(admin.token);
    expect(await ops.subscribe("logs:all")).toMatchObject({ type: "subscribed" });
    // Whether anyone listens to logs:all is looked up at most once a second: wait until the stream flows.
    await eventually(
      async () => {
        await api("GET", "/api/auth/me", member.token);
        return ops.messages.some((m) => m.type === "request" && m.path === "/api/auth/me");
      },
      5000,
      "the request stream to flow",
    );
    await api("POST", `/api/apps/${appId}/start`, member.token, { timeout: 0 });
    await eventually(
      async () => watcher.messages.find((m) => m.type === "status" && m.status === "running"),
      10_000,
      "running",
    );
    await api("POST", `/api/apps/${appId}/stop`, member.token);
    await eventually(
      async () => watcher.messages.find((m) => m.type === "status" && m.status === "stopped"),
      10_000,
      "stopped",
    );
    expect(watcher.messages.filter((m) => m.type === "status").map((m) => m.status)).toEqual([
      "starting",
      "running",
      "stopping",
      "stopped",
    ]);

    const requests = await eventually(
      async () => {
        const seen = ops.messages.filter((m) => m.type === "request" && String(m.path).endsWith("/stop"));
        return seen.length > 0 ? seen : undefined;
      },
      5000,
      "request events",
    );
    expect(requests[0]).toMatchObject({
      method: "POST",
      status: 202,
      durationMs: expect.any(Number),
      ts: expect.any(Number),
    });
    expect(JSON.stringify(ops.messages)).not.toContain(member.token);
    watcher.socket.close();
    ops.socket.close();
  });
});
