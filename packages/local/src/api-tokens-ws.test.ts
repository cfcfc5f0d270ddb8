import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fetchApi } from "@hoist/core/testing/fetch-api";
import { eventually } from "@hoist/core/testing/workers";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import WebSocket from "ws";
import type { Runtime } from "./runtime.ts";
import { startTestRuntime } from "./testing/test-runtime.ts";

type Json = Record<string, unknown>;
let runtime: Runtime;
let session: string;
const api = fetchApi(() => runtime.url);

beforeAll(async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "hoist-tok-"));
  runtime = await startTestRuntime({ name: "tok", dataDir: dataDir, dynamoEndpoint: inject("dynamoEndpoint") });
  const res = await api<{ token: string }>("POST", "/api/auth/register", undefined, {
    username: "root",
    email: "root@example.com",
    password: "correct horse battery staple",
  });
  session = res.body.token; // the first user: an admin
}, 60_000);
afterAll(async () => {
  await runtime?.stop();
});

const mint = async (scopes: string[]) =>
  (await api<{ id: string; token: string }>("POST", "/api/tokens", session, { name: scopes.join(","), scopes })).body;

/** A real `ws` client: opens with `?token=`, or fails with the gateway's HTTP status. */
function open(token: string): Promise<{ socket: WebSocket; messages: Json[] }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${runtime.wsUrl}?token=${encodeURIComponent(token)}`);
    const messages: Json[] = [];
    socket.on("message", (d) => messages.push(JSON.parse(d.toString()) as Json));
    socket.once("open", () => resolve({ socket, messages }));
    socket.once("error", reject);
    socket.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
}

async function subscribe(client: { socket: WebSocket; messages: Json[] }, channel: string) {
  client.socket.send(JSON.stringify({ action: "subscribe", channel }));
  return eventually(
    async () => client.messages.find((m) => m.channel === channel || m.type === "error"),
    5000,
    channel,
  );
}

describe("API tokens on the embedded WebSocket gateway", () => {
  it("connect with ?token=hst_…, subscribe within their scopes, and are refused at connect once revoked", async () => {
    const admin = await mint(["admin"]);
    const read = await mint(["read"]);

    const full = await open(admin.token);
    expect(await subscribe(full, "logs:all")).toMatchObject({ type: "subscribed", channel: "logs:all" });
    const limited = await open(read.token);
    expect(await subscribe(limited, "logs:all")).toMatchObject({ type: "error" });
    full.socket.close();
    limited.socket.close();

    expect((await api("DELETE", `/api/tokens/${read.id}`, session)).status).toBe(200);
    await expect(open(read.token)).rejects.toThrow("HTTP 401");
  });
});
