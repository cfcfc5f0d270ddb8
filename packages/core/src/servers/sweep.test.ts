import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TestClient, testClient } from "../testing/http.ts";
import { startTestSshServer, type TestSshServer } from "../testing/ssh-server.ts";
import { eventually } from "../testing/workers.ts";
import { sweepServers } from "./status.ts";

let t: TestClient;
let up: TestSshServer;
let stalled: TestSshServer;
let token: string;

beforeAll(async () => {
  t = await testClient({ HOIST_STATUS_SWEEP_SECONDS: "0", HOIST_SSH_CONNECT_TIMEOUT_SECONDS: "3" });
  up = await startTestSshServer();
  stalled = await startTestSshServer({ stallHandshake: true });
  token = (await t.register("sweeper")).token;
});
afterAll(async () => {
  await up?.stop();
  await stalled?.stop();
});

const addServer = async (name: string, port: number, privateKey: string) =>
  (
    await t.json<{ id: string }>("POST", "/api/servers", {
      token,
      body: { name, address: "127.0.0.1", sshPort: port, sshUser: up.username, privateKey },
    })
  ).body.id;

describe("status sweep", () => {
  it("updates every server without a slow one holding up the others", async () => {
    const healthy = await Promise.all([1, 2, 3].map((i) => addServer(`up-${i}`, up.port, up.clientKey.private)));
    const slow = await addServer("stalled", stalled.port, up.clientKey.private);
    const gone = await startTestSshServer();
    await gone.stop(); // its port now has nobody listening
    const closedPort = gone.port;
    const dead = await addServer("dead", closedPort, up.clientKey.private);

    let finished = false;
    const sweep = sweepServers(t.deps).then((r) => {
      finished = true;
      return r;
    });
    // The healthy servers are online while the stalled one is still timing out.
    await eventually(
      async () => {
        const items = await Promise.all(
          healthy.map((id) => t.json<{ status: string }>("GET", `/api/servers/${id}`, { token })),
        );
        return items.every((s) => s.body.status === "online");
      },
      10_000,
      "healthy servers online",
    );
    expect(finished).toBe(false);

    const result = await sweep;
    expect(result).toMatchObject({ checked: 5, online: 3, offline: 2 });
    const status = async (id: string) =>
      (await t.json<{ status: string; lastError: { kind: string } | null }>("GET", `/api/servers/${id}`, { token }))
        .body;
    expect(await status(slow)).toMatchObject({ status: "offline", lastError: { kind: "timeout" } });
    expect(await status(dead)).toMatchObject({ status: "offline", lastError: { kind: "refused" } });
  });
});
