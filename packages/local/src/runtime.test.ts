import { execFileSync } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "@hoist/core/config";
import { createLogger } from "@hoist/core/logger";
import { afterAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { type Runtime, startRuntime } from "./runtime.ts";

/** The embedded runtime as `npm start` runs it: its own DynamoDB Local on disk, real HTTP and WebSocket. */
describe("embedded runtime", () => {
  let dataDir: string;
  let runtime: Runtime | undefined;
  afterAll(async () => runtime?.stop());

  const start = async () =>
    startRuntime(loadConfig({ PORT: "0", HOIST_DATA_DIR: dataDir, HOIST_LOG_LEVEL: "silent" }), createLogger("silent"));
  const javaProcesses = () => {
    try {
      return execFileSync("pgrep", ["-f", dataDir]).toString().trim().split("\n").filter(Boolean).length;
    } catch {
      return 0;
    }
  };

  it("starts, answers /health/ready over HTTP and a WebSocket ping through @connections", async () => {
    dataDir = await mkdtemp(join(tmpdir(), "hoist-runtime-"));
    runtime = await start();
    const res = await fetch(`${runtime.url}/health/ready`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });

    // connect → $connect event → connection stored; ping → $default → handler posts through the
    // AWS SDK client to POST /@connections/{id} → the socket receives the pong.
    const register = await fetch(`${runtime.url}/api/auth/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "owner", email: "owner@example.com", password: "correct horse battery staple" }),
    });
    expect(register.status).toBe(201);
    const { token } = (await register.json()) as { token: string };
    const socket = new WebSocket(`${runtime.wsUrl}?token=${token}`);
    const pong = new Promise<unknown>((resolve, reject) => {
      socket.once("message", (data) => resolve(JSON.parse(data.toString())));
      socket.once("error", reject);
    });
    await new Promise((resolve) => socket.once("open", resolve));
    socket.send(JSON.stringify({ action: "ping" }));
    expect(await pong).toMatchObject({ type: "pong", ts: expect.any(Number) });
    socket.close();

    await runtime.deps.store.put({ pk: "RUNTIME#test", sk: "X", note: "kept across restarts" });
    expect(javaProcesses()).toBe(1);
  });

  it("stops everything it started, and a second start finds the data as it was", async () => {
    await runtime?.stop();
    runtime = undefined;
    expect(javaProcesses()).toBe(0);

    runtime = await start();
    expect(await runtime.deps.store.get({ pk: "RUNTIME#test", sk: "X" })).toMatchObject({
      note: "kept across restarts",
    });
    const envelope = await runtime.deps.keyVault.encrypt("s3cret", { ownerId: "usr_1" });
    await runtime.stop();
    runtime = await start();
    expect(await runtime.deps.keyVault.decrypt(envelope, { ownerId: "usr_1" })).toBe("s3cret");
  });
});
