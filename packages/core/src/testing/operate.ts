import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startOperateQueue } from "@hoist/local/operate-queue";
import { TableQueue } from "../adapters/local/table-queue.ts";
import { jobHandlers } from "../jobs/handlers.ts";
import type { Broadcaster } from "../ports.ts";
import { createWsHandler } from "../realtime/ws-handler.ts";
import type { DynamoStore } from "../store/dynamo-store.ts";
import { ownerWithServer, type TestClient, testClient } from "./http.ts";
import { startTestSshServer, type TestSshServer } from "./ssh-server.ts";

/**
 * A stand-in `docker` for the loopback SSH server's PATH: `docker compose
 * logs` prints `./compose.log` (lines as compose prints them: `web-1  |
 * <time> <text>`), honouring `--since` (times compared as strings: the tests
 * write normalized ones) and `--tail N`; with `--follow` it keeps printing
 * what is appended (polling the file every 20 ms, or `$STANDIN_POLL_MS`).
 * Anything else fails.
 */
const DOCKER = `#!/usr/bin/env node
const fs = require("node:fs");
const args = process.argv.slice(2);
if (args[0] !== "compose" || args[1] !== "logs") {
  process.stderr.write("stand-in docker: unsupported: " + args.join(" ") + "\\n");
  process.exit(64);
}
let follow = false, tail, since = "";
for (let i = 2; i < args.length; i++) {
  const a = args[i];
  if (a === "--follow" || a === "-f") follow = true;
  else if (a === "--tail") tail = Number(args[++i]);
  else if (a === "--since") since = args[++i];
  else if (a !== "--timestamps" && a !== "--no-color") {
    process.stderr.write("stand-in docker: unknown flag " + a + "\\n");
    process.exit(64);
  }
}
const keep = (line) => line !== "" && (line.split(/ +/)[2] ?? "") >= since;
let pos = 0, partial = "";
const read = () => {
  const buf = fs.readFileSync("compose.log");
  const text = partial + buf.subarray(pos).toString("utf8");
  pos = buf.length;
  const lines = text.split("\\n");
  partial = lines.pop();
  return lines.filter(keep);
};
let lines = read();
if (tail !== undefined) lines = tail === 0 ? [] : lines.slice(-tail);
if (lines.length > 0) process.stdout.write(lines.join("\\n") + "\\n");
if (follow) setInterval(() => {
  const more = read();
  if (more.length > 0) process.stdout.write(more.join("\\n") + "\\n");
}, Number(process.env.STANDIN_POLL_MS) || 20);
`;

/** Puts the stand-in `docker` in `dir` (for a test SSH server's `pathPrefix`). */
export async function writeStandInDocker(dir: string): Promise<void> {
  await writeFile(join(dir, "docker"), DOCKER, { mode: 0o755 });
}

export type Json = Record<string, unknown>;

/** What each connection was posted, in order. */
export class RecordingBroadcaster implements Broadcaster {
  readonly sent = new Map<string, Json[]>();
  readonly gone = new Set<string>();
  delayMs = 0;
  async post(connectionId: string, message: unknown): Promise<"sent" | "gone"> {
    if (this.gone.has(connectionId)) return "gone";
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    this.sent.set(connectionId, [...(this.sent.get(connectionId) ?? []), message as Json]);
    return "sent";
  }
  async close(): Promise<void> {}
  of(connectionId: string, type?: string): Json[] {
    return (this.sent.get(connectionId) ?? []).filter((m) => type === undefined || m.type === type);
  }
}

export interface OperateSetup {
  t: TestClient;
  ssh: TestSshServer;
  broadcaster: RecordingBroadcaster;
  owner: { token: string; userId: string };
  appId: string;
  appDir: string;
  /** The app's env var the tests expect masked. */
  secret: string;
  /** Appends lines to the app's compose.log. */
  append(lines: string[]): void;
  /** A WebSocket message from `connectionId` (connected first with `connect`). */
  send(connectionId: string, message: Json): Promise<void>;
  connect(connectionId: string, token: string): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Real pieces end to end: the app over a fresh table, the ws handler, the
 * operate queue consumed as the embedded runtime does, a loopback SSH server
 * with the stand-in `docker`, an owner with an app (and a secret env var).
 */
export async function operateSetup(env: Record<string, string> = {}): Promise<OperateSetup> {
  const bin = await mkdtemp(join(tmpdir(), "hoist-docker-"));
  await writeStandInDocker(bin);
  const ssh = await startTestSshServer({ pathPrefix: [bin] });
  const t = await testClient({ HOIST_APP_LOG_IDLE_SECONDS: "1", ...env });
  const broadcaster = new RecordingBroadcaster();
  t.deps.broadcaster = broadcaster;
  const queue = new TableQueue({
    store: t.deps.store as DynamoStore,
    name: "operate",
    maxAttempts: 3,
    visibilitySeconds: 30,
    pollIntervalMs: 20,
    maxPollIntervalMs: 100,
    concurrency: 64,
    logger: t.deps.logger,
  });
  const stopping = new AbortController();
  t.deps.operateQueue = queue;
  t.deps.stopping = stopping.signal;
  const stopQueue = await startOperateQueue(t.deps, queue, jobHandlers, stopping);
  const handler = createWsHandler(t.deps);

  const owner = await ownerWithServer(t, ssh, `op${Math.random().toString(36).slice(2, 8)}`);
  const appDir = join(ssh.cwd, "app");
  mkdirSync(appDir);
  writeFileSync(join(appDir, "compose.log"), "");
  const app = await t.json<{ id: string }>("POST", "/api/apps", {
    token: owner.token,
    body: { name: "live", projectId: owner.projectId, serverId: owner.serverId, cdPath: appDir },
  });
  if (app.status !== 201) throw new Error(`app: ${app.status} ${JSON.stringify(app.body)}`);
  const secret = "s3cr3t-v4lue";
  await t.json("PUT", `/api/apps/${app.body.id}/env`, { token: owner.token, body: { API_SECRET: secret } });

  return {
    t,
    ssh,
    broadcaster,
    owner,
    appId: app.body.id,
    appDir,
    secret,
    append: (lines) => appendFileSync(join(appDir, "compose.log"), lines.map((l) => `${l}\n`).join("")),
    connect: async (connectionId, token) =>
      (await handler({ requestContext: { routeKey: "$connect", connectionId }, queryStringParameters: { token } }))
        .statusCode,
    send: async (connectionId, message) => {
      await handler({ requestContext: { routeKey: "$default", connectionId }, body: JSON.stringify(message) });
    },
    stop: async () => {
      await stopQueue();
      await ssh.stop();
    },
  };
}

/** A line as compose prints it (`web-1  | <time> <text>`), at `ms` plus `nanos`. */
export function composeLine(service: string, ms: number, text: string, nanos = 0): string {
  const iso = new Date(ms).toISOString();
  return `${service.padEnd(6)} | ${iso.slice(0, 23)}${String(nanos).padStart(6, "0")}Z ${text}`;
}
