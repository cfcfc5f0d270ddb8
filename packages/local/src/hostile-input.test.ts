import { mkdtemp } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import WebSocket from "ws";
import { HTTP_LIMITS } from "./http-server.ts";
import type { Runtime } from "./runtime.ts";
import { startTestRuntime } from "./testing/test-runtime.ts";

/**
 * Bytes a browser would never send, written to the runtime's port over raw
 * TCP: each gets an HTTP answer (or a close), and the process keeps serving.
 */
let runtime: Runtime;
let port: number;
let token: string;

interface Exchange {
  /** Everything the server sent, as latin1. */
  text: string;
  /** The status of its answer, when it sent one. */
  status: number | undefined;
  /** Whether the server closed the connection before we gave up waiting. */
  closed: boolean;
}

/** Writes `payload` on a fresh connection and reads until the server closes it (or `waitMs` passes). */
function exchange(payload: string | Buffer, waitMs = 3000, socketOut?: (s: ReturnType<typeof connect>) => void) {
  return new Promise<Exchange>((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socketOut?.(socket);
    let text = "";
    const done = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]) || undefined, closed });
    };
    const timer = setTimeout(() => done(false), waitMs);
    socket.on("data", (chunk) => {
      text += chunk.toString("latin1");
    });
    // A reset right after the answer (the server closing with bytes unread) is part of the answer.
    socket.on("error", () => done(true));
    socket.on("close", () => done(true));
    socket.write(payload);
  });
}

const KEY = "dGhlIHNhbXBsZSBub25jZQ==";
const upgrade = `Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${KEY}\r\n`;
const request = (target: string, headers = "", method = "GET") =>
  `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}\r\n`;

/** The runtime still answers: health on a new connection, and a real WebSocket opens. */
async function stillServing() {
  const health = await exchange(request("/health/ready", "Connection: close\r\n"));
  expect(health.status, health.text).toBe(200);
  const socket = new WebSocket(`${runtime.wsUrl}?token=${token}`);
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
    socket.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
  socket.close();
}

// Started before the other cases and checked last: their 408 takes HTTP_LIMITS.headersTimeout.
let slowHeaders: Promise<Exchange & { ms: number }>;
let onlyNewlines: Promise<Exchange & { ms: number }>;
const timed = (payload: string) => {
  const started = Date.now();
  return exchange(payload, HTTP_LIMITS.headersTimeout + 5000).then((x) => ({ ...x, ms: Date.now() - started }));
};

beforeAll(async () => {
  runtime = await startTestRuntime({
    name: "hostile",
    dataDir: await mkdtemp(join(tmpdir(), "hoist-hostile-")),
    dynamoEndpoint: inject("dynamoEndpoint"),
  });
  port = Number(new URL(runtime.url).port);
  slowHeaders = timed("GET /health/re");
  onlyNewlines = timed("\r\n\r\n");
  const res = await fetch(`${runtime.url}/api/auth/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: "owner", email: "owner@example.com", password: "correct horse battery staple" }),
  });
  expect(res.status).toBe(201);
  token = ((await res.json()) as { token: string }).token;
}, 60_000);
afterAll(async () => runtime?.stop());

describe("hostile input on the API port", () => {
  it.each<[string, number, string | Buffer]>([
    // Hono answers this one itself and would keep the connection open for the next request: ask it to close.
    ["an unparseable absolute URL", 400, request("http://[", "Connection: close\r\n")],
    ["an unparseable absolute URL asking for a WebSocket", 400, request("http://[", upgrade)],
    ["garbage bytes (a TLS ClientHello)", 400, Buffer.from("160301020001000200030303fe00ff0d0a0d0a", "hex")],
    ["a request line without a version", 400, "GET /\r\n\r\n"],
    ["an upgrade to //", 400, request("//", upgrade)],
    ["an upgrade to /ws%zz", 404, request("/ws%zz", upgrade)],
    ["an upgrade to /ws?token=%zz", 401, request("/ws?token=%zz", upgrade)],
    ["an upgrade to an absolute URL with a bad host", 400, request("http://[::1/ws", upgrade)],
    ["an upgrade to an absolute URL with a percent-encoded host", 400, request("http://%zz/ws", upgrade)],
    [
      "an upgrade without Sec-WebSocket-Key",
      400,
      request("/ws?token=x", upgrade.replace(/Sec-WebSocket-Key.*\r\n/, "")),
    ],
    ["an upgrade with a bad Sec-WebSocket-Version", 400, request("/ws", upgrade.replace("Version: 13", "Version: 99"))],
    ["an upgrade by POST", 405, request("/ws", upgrade, "POST")],
    ["headers past 16 KB", 431, request("/health/ready", `X-Big: ${"a".repeat(17 * 1024)}\r\n`)],
    ["headers past 16 KB asking for a WebSocket", 431, request("/ws", `${upgrade}X-Big: ${"a".repeat(17 * 1024)}\r\n`)],
  ])("%s: answered %i and closed, and Hoist keeps serving", async (_name, status, payload) => {
    const answer = await exchange(payload);
    expect(answer.status, answer.text).toBe(status);
    expect(answer.closed).toBe(true);
    await stillServing();
  });

  it("a valid token does not carry a malformed handshake past the check: 400 before $connect runs", async () => {
    const answer = await exchange(request(`/ws?token=${token}`, upgrade.replace(/Sec-WebSocket-Key.*\r\n/, "")));
    expect(answer.status).toBe(400);
    await stillServing();
  });

  it("garbage after a valid WebSocket handshake closes that socket only", async () => {
    // Once the 101 arrives, a frame with reserved bits and an unknown opcode: ws's 'error', then a terminate.
    const answer = await exchange(request(`/ws?token=${token}`, upgrade), 3000, (s) =>
      s.once("data", () => s.write(Buffer.from("ffffffffffffffff", "hex"))),
    );
    expect(answer.text).toMatch(/^HTTP\/1\.1 101 /);
    expect(answer.closed).toBe(true);
    await stillServing();
  });

  it("clients that never finish their headers get 408 after headersTimeout, holding no one up meanwhile", async () => {
    for (const pending of [slowHeaders, onlyNewlines]) {
      const answer = await pending;
      expect(answer.status, answer.text).toBe(408);
      expect(answer.closed).toBe(true);
      expect(answer.ms).toBeGreaterThanOrEqual(HTTP_LIMITS.headersTimeout - 100);
      expect(answer.ms).toBeLessThan(HTTP_LIMITS.headersTimeout + HTTP_LIMITS.connectionsCheckingInterval + 1000);
    }
    await stillServing();
  }, 30_000);
});
