import { appendFile, mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fetchApi } from "@hoist/core/testing/fetch-api";
import { composeLine, writeStandInDocker } from "@hoist/core/testing/operate";
import { startTestSshServer, type TestSshServer } from "@hoist/core/testing/ssh-server";
import { eventually } from "@hoist/core/testing/workers";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import WebSocket from "ws";
import type { Runtime } from "./runtime.ts";
import { startTestRuntime } from "./testing/test-runtime.ts";

/**
 * The operate path as `npm start` wires it: the embedded WebSocket gateway,
 * the runtime's own operate queue and a loopback SSH target with a stand-in
 * `docker`, driven by a real `ws` client.
 */
type Json = Record<string, unknown>;
let runtime: Runtime | undefined;
let ssh: TestSshServer;
let token: string;
let appId: string;
let appDir: string;
const api = fetchApi(() => (runtime as Runtime).url);

beforeAll(async () => {
  const bin = await mkdtemp(join(tmpdir(), "hoist-op-bin-"));
  await writeStandInDocker(bin);
  ssh = await startTestSshServer({ pathPrefix: [bin] });
  runtime = await startTestRuntime({
    name: "op",
    dataDir: await mkdtemp(join(tmpdir(), "hoist-op-")),
    dynamoEndpoint: inject("dynamoEndpoint"),
    env: { HOIST_APP_LOG_IDLE_SECONDS: "1" },
  });
  const ok = async <T>(res: Promise<{ status: number; body: T }>) => {
    const r = await res;
    if (r.status >= 300) throw new Error(`setup: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  token = (
    await ok(
      api<{ token: string }>("POST", "/api/auth/register", undefined, {
        username: "operator",
        email: "op@example.com",
        password: "correct horse battery staple",
      }),
    )
  ).token;
  const server = await ok(
    api<{ id: string }>("POST", "/api/servers", token, {
      name: "box",
      address: ssh.host,
      sshPort: ssh.port,
      sshUser: ssh.username,
      privateKey: ssh.clientKey.private,
    }),
  );
  const project = await ok(api<{ id: string }>("POST", "/api/projects", token, { name: "ops" }));
  appDir = join(ssh.cwd, "web");
  await mkdir(appDir);
  await writeFile(join(appDir, "compose.log"), "");
  appId = (
    await ok(
      api<{ id: string }>("POST", "/api/apps", token, {
        name: "web",
        projectId: project.id,
        serverId: server.id,
        cdPath: appDir,
      }),
    )
  ).id;
}, 60_000);
afterAll(async () => {
  await runtime?.stop();
  await ssh?.stop();
});

function open(): Promise<{ socket: WebSocket; messages: Json[] }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${(runtime as Runtime).wsUrl}?token=${encodeURIComponent(token)}`);
    const messages: Json[] = [];
    socket.on("message", (d) => messages.push(JSON.parse(d.toString()) as Json));
    socket.once("open", () => resolve({ socket, messages }));
    socket.once("error", reject);
  });
}

describe("operating an app on the embedded runtime", () => {
  it("streams an exec over the WebSocket through the operate queue, then its end", async () => {
    const { socket, messages } = await open();
    socket.send(
      JSON.stringify({
        action: "exec",
        id: "x1",
        appId,
        command: 'echo "in $(basename "$PWD")"; echo oops >&2; exit 4',
      }),
    );
    const end = await eventually(async () => messages.find((m) => m.type === "exec-end"), 10_000, "exec-end");
    expect(end).toMatchObject({ id: "x1", exitCode: 4 });
    const lines = messages.filter((m) => m.type === "exec").map((m) => [m.stream, m.line]);
    expect(lines).toEqual(
      expect.arrayContaining([
        ["stdout", "in web"],
        ["stderr", "oops"],
      ]),
    );
    expect(messages.indexOf(end)).toBe(messages.length - 1);
    socket.close();
  });

  it("follows the app's container logs while subscribed, and the runtime stops cleanly with a tail running", async () => {
    const { socket, messages } = await open();
    socket.send(JSON.stringify({ action: "subscribe", channel: `app-logs:${appId}` }));
    await eventually(async () => messages.find((m) => m.type === "subscribed"), 5000, "subscribed");
    const lines = () =>
      messages.flatMap((m) => (m.type === "app-log" ? (m.lines as { line: string }[]).map((l) => l.line) : []));
    // Lines appended until the tail follows (it starts from the subscribe's time: earlier ones may be re-read).
    let n = 0;
    await eventually(
      async () => {
        await appendFile(join(appDir, "compose.log"), `${composeLine("web-1", Date.now(), `line ${++n}`)}\n`);
        return lines().length > 0 || undefined;
      },
      10_000,
      "first app-log line",
    );
    await appendFile(join(appDir, "compose.log"), `${composeLine("web-1", Date.now(), "last")}\n`);
    await eventually(async () => lines().includes("last") || undefined, 5000, "the last line");
    expect(ssh.liveCommands().length).toBe(1); // one `docker compose logs --follow`
    await runtime?.stop(); // ends the tail (its lease released), the queue, then the executor
    runtime = undefined;
    await eventually(async () => ssh.liveCommands().length === 0 || undefined, 5000, "the tail's command ended");
    socket.terminate();
  });
});
