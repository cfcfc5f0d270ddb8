import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Json, type OperateSetup, operateSetup } from "../testing/operate.ts";
import { eventually } from "../testing/workers.ts";

let s: OperateSetup;
let n = 0;

beforeAll(async () => {
  s = await operateSetup();
}, 60_000);
afterAll(async () => {
  await s?.stop();
});

type ExecLine = { type: "exec"; id: string; stream: string; line: string };

async function connection(token = s.owner.token): Promise<string> {
  const id = `x${++n}`;
  expect(await s.connect(id, token)).toBe(200);
  return id;
}
const exec = (conn: string, id: string, command: string, appId = s.appId) =>
  s.send(conn, { action: "exec", id, appId, command });
const ended = (conn: string, id: string, timeoutMs = 8000) =>
  eventually(async () => s.broadcaster.of(conn, "exec-end").find((m) => m.id === id), timeoutMs, `exec ${id} to end`);
const lines = (conn: string, id: string) =>
  s.broadcaster.of(conn, "exec").filter((m) => m.id === id) as unknown as ExecLine[];
const audits = async (token: string) =>
  (await s.t.json<{ items: Json[] }>("GET", "/api/audit-logs?action=app.exec", { token })).body.items;

describe("exec over the WebSocket", () => {
  it("streams stdout and stderr as they come, masked, then the exit code; audited with its command", async () => {
    const conn = await connection();
    const command = 'echo one; echo two >&2; echo "key=$API_SECRET"; pwd; exit 3';
    await exec(conn, "e1", command);
    expect(await ended(conn, "e1")).toEqual({ type: "exec-end", id: "e1", exitCode: 3 });
    // Each stream in order (stdout and stderr are two SSH streams: their interleaving is not fixed).
    const of = (stream: string) =>
      lines(conn, "e1")
        .filter((l) => l.stream === stream)
        .map((l) => l.line);
    expect(of("stdout")).toEqual(["one", "key=••••", s.appDir]);
    expect(of("stderr")).toEqual(["two"]);
    const entry = (await audits(s.owner.token)).find((a) => (a.details as Json).command === command);
    expect(entry).toMatchObject({ action: "app.exec", resourceType: "app", resourceId: s.appId });

    // The same id again on this connection is refused; on another connection it is another exec.
    const before = s.ssh.commands.length;
    await exec(conn, "e1", "echo again");
    expect(s.broadcaster.of(conn, "error").at(-1)).toMatchObject({ id: "e1" });
    const other = await connection();
    await exec(other, "e1", "echo again");
    expect(await ended(other, "e1")).toMatchObject({ exitCode: 0 });
    expect(s.ssh.commands.length).toBe(before + 1);
  });

  it("times out, and is cancelled within a moment, killing the command each time", async () => {
    const conn = await connection();
    s.t.deps.config.operate.execTimeoutMs = 1000;
    try {
      const started = Date.now();
      await exec(conn, "slow", "echo started; sleep 30");
      expect(await ended(conn, "slow")).toEqual({ type: "exec-end", id: "slow", exitCode: null, timedOut: true });
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      s.t.deps.config.operate.execTimeoutMs = 300_000;
    }

    await exec(conn, "c1", "echo started; sleep 30");
    await eventually(async () => lines(conn, "c1").length === 1, 5000, "the first line");
    const asked = Date.now();
    await s.send(conn, { action: "exec-cancel", id: "c1" });
    expect(await ended(conn, "c1")).toEqual({ type: "exec-end", id: "c1", exitCode: null, cancelled: true });
    expect(Date.now() - asked).toBeLessThan(2000);
    await eventually(async () => s.ssh.liveCommands().length === 0, 3000, "no command left running");

    await s.send(conn, { action: "exec-cancel", id: "nope" });
    expect(s.broadcaster.of(conn, "error").at(-1)).toMatchObject({ id: "nope" });
  });

  it("stops the command at the output cap and says so", async () => {
    const conn = await connection();
    s.t.deps.config.operate.execMaxOutputBytes = 4096;
    try {
      await exec(conn, "big", 'i=0; while true; do echo "line $i"; i=$((i+1)); done');
      expect(await ended(conn, "big")).toEqual({ type: "exec-end", id: "big", exitCode: null, truncated: true });
      const got = lines(conn, "big");
      expect(got.reduce((b, l) => b + Buffer.byteLength(l.line) + 1, 0)).toBeLessThanOrEqual(4096);
      expect(got.map((l) => l.line).slice(0, 3)).toEqual(["line 0", "line 1", "line 2"]);
      await eventually(async () => s.ssh.liveCommands().length === 0, 5000, "no command left running");
    } finally {
      s.t.deps.config.operate.execMaxOutputBytes = 1024 * 1024;
    }
  });

  it("refuses another tenant's app and a token without `write`: an error, nothing run, nothing audited", async () => {
    const eve = await s.t.register(`eve${Date.now().toString(36)}`);
    const conn = await connection(eve.token);
    const before = s.ssh.commands.length;
    await exec(conn, "steal", "cat .env");
    expect(s.broadcaster.of(conn).at(-1)).toMatchObject({
      type: "error",
      id: "steal",
      message: expect.stringMatching(/not found/),
    });

    const minted = await s.t.json<{ token: string }>("POST", "/api/tokens", {
      token: s.owner.token,
      body: { name: "ci", scopes: ["deploy"] },
    });
    const scoped = await connection(minted.body.token);
    await exec(scoped, "d1", "id");
    expect(s.broadcaster.of(scoped).at(-1)).toMatchObject({ type: "error", message: expect.stringMatching(/"write"/) });

    await new Promise((r) => setTimeout(r, 300));
    expect(s.ssh.commands.length).toBe(before);
    expect(await audits(eve.token)).toEqual([]);
    expect((await audits(s.owner.token)).some((a) => (a.details as Json).command === "id")).toBe(false);
  });
});

describe("POST /api/apps/:id/exec", () => {
  it("answers exit code and masked output, capped; audited; 404 for another tenant, 400 for a bad body", async () => {
    const url = `/api/apps/${s.appId}/exec`;
    const ok = await s.t.json<Json>("POST", url, {
      token: s.owner.token,
      body: { command: 'echo hi; echo "$API_SECRET" >&2; exit 2' },
    });
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({ exitCode: 2, output: "hi\n••••", truncated: false, timedOut: false });
    // The variables are exported, and `.env` stays as the last deploy or start wrote it (an exec writes nothing).
    await writeFile(join(s.appDir, ".env"), "API_SECRET='from-the-last-deploy'\n");
    const read = await s.t.json<Json>("POST", url, { token: s.owner.token, body: { command: "cat .env" } });
    expect(read.body.output).toBe("API_SECRET='from-the-last-deploy'");
    expect((await audits(s.owner.token)).some((a) => (a.details as Json).via === "http")).toBe(true);

    const big = await s.t.json<{ output: string; truncated: boolean; exitCode: number | null }>("POST", url, {
      token: s.owner.token,
      body: { command: "while true; do echo 0123456789; done" },
    });
    expect(big.body).toMatchObject({ truncated: true, exitCode: null });
    expect(Buffer.byteLength(big.body.output)).toBeLessThanOrEqual(64 * 1024);

    const eve = await s.t.register(`eve2${Date.now().toString(36)}`);
    expect((await s.t.json("POST", url, { token: eve.token, body: { command: "id" } })).status).toBe(404);
    for (const body of [{}, { command: "" }, { command: "x".repeat(4097) }, { command: "id", extra: 1 }])
      expect((await s.t.json("POST", url, { token: s.owner.token, body })).status).toBe(400);
  });
});
