import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../config.ts";
import type { Broadcaster, Deps } from "../ports.ts";
import { settleReplays } from "../realtime/log-fanout.ts";
import { subscribe } from "../realtime/subscribe.ts";
import { testDeps } from "../testing/deps.ts";
import { startTestSshServer, type TestSshServer } from "../testing/ssh-server.ts";
import { type DeploymentItem, deploymentKey, type LogLine } from "./entity.ts";
import { type LogChunkItem, storedLines } from "./log-chunks.ts";
import { LogWriter } from "./log-writer.ts";

/** A broadcaster that records what each connection was sent, optionally slow or jittery. */
class RecordingBroadcaster implements Broadcaster {
  readonly sent = new Map<string, LogLine[]>();
  delayMs: () => number = () => 0;
  async post(connectionId: string, message: unknown): Promise<"sent"> {
    const delay = this.delayMs();
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    const m = message as { type: string; lines?: LogLine[] };
    if (m.type === "log") this.sent.set(connectionId, [...(this.sent.get(connectionId) ?? []), ...(m.lines ?? [])]);
    return "sent";
  }
  async close(): Promise<void> {}
  seqs(connectionId: string): number[] {
    return (this.sent.get(connectionId) ?? []).map((l) => l.seq);
  }
}

let deps: Deps & { config: Config };
let broadcaster: RecordingBroadcaster;
let ssh: TestSshServer;
let n = 0;

beforeAll(async () => {
  broadcaster = new RecordingBroadcaster();
  deps = { ...(await testDeps({ HOIST_DEPLOY_LOG_MAX_BYTES: String(64 * 1024 * 1024) })), broadcaster };
  ssh = await startTestSshServer();
});
afterAll(async () => {
  await ssh?.stop();
});

async function deployment(status: DeploymentItem["status"] = "running"): Promise<string> {
  const id = `dep${++n}${Date.now().toString(36)}`;
  await deps.store.put({ ...deploymentKey(id), entity: "deployment", id, ownerId: "u1", appId: "a1", status });
  return id;
}

const setStatus = (id: string, status: DeploymentItem["status"]) =>
  deps.store.update(deploymentKey(id), { set: { status } });

const join = (id: string, connectionId: string, since = 0) =>
  subscribe(
    deps,
    { connectionId, userId: "u1", expiresAt: Math.floor(Date.now() / 1000) + 3600 },
    `deployment:${id}`,
    since,
  );

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Page after page from `after`, as a client would (at most `pages` pages). */
async function readAll(id: string, after: number, limit: number, pages = Number.POSITIVE_INFINITY): Promise<LogLine[]> {
  const out: LogLine[] = [];
  for (let from = after, page = 0; ; page++) {
    const { lines, more } = await storedLines(deps, id, from, limit);
    out.push(...lines);
    if (!more || page + 1 >= pages) return out;
    from = lines.at(-1)?.seq ?? from;
  }
}

describe("deploy log storage and streaming", () => {
  it("stores lines in chunks, caps the stored bytes with a marker, and replays exactly from any seq", async () => {
    const id = await deployment();
    const log = new LogWriter(deps, id, (l) => l.replace("secret", "••••"), { maxBytes: 600 * 1024, retentionDays: 7 });
    const body = "x".repeat(190);
    for (let i = 1; i <= 4000; i++) log.write(i % 7 === 0 ? "stderr" : "stdout", `${i} secret ${body}`);
    log.write("system", "Done: exit code 0");
    await log.close();

    const chunks = await deps.store.query<LogChunkItem>({ pk: `DEP#${id}`, sk: { beginsWith: "LOGC#" } });
    expect(chunks.items.length).toBeGreaterThan(4);
    const now = Date.now() / 1000;
    for (const c of chunks.items) {
      expect(Buffer.byteLength(c.body)).toBeLessThan(200 * 1024);
      expect(c.expiresAt).toBeGreaterThan(now + 6.9 * 86_400);
      expect(c.expiresAt).toBeLessThan(now + 7.1 * 86_400);
    }

    const all = await readAll(id, 0, 1000);
    const marker = all.findIndex((l) => l.line.startsWith("[log truncated"));
    expect(marker).toBeGreaterThan(2500);
    // Before the marker: every line, in order, masked; after it: the kept system lines only.
    expect(all.slice(0, marker).map((l) => l.seq)).toEqual(range(1, marker));
    expect(all[0]).toMatchObject({ seq: 1, stream: "stdout", line: `1 •••• ${body}` });
    expect(all[6]).toMatchObject({ seq: 7, stream: "stderr" });
    const tail = all.slice(marker + 1);
    expect(tail.map((l) => l.line)).toEqual([
      "Done: exit code 0",
      expect.stringMatching(/^\[\d+ lines \(.* MiB\) past the stored-log cap were streamed live but not stored\]$/),
    ]);
    expect(tail.map((l) => l.seq)).toEqual([4002, 4003]); // 4000 lines + the marker, then the two system lines
    expect((await deps.store.get<DeploymentItem>(deploymentKey(id)))?.logTruncated).toBe(true);

    // Any `after`, any page size: exactly the stored lines after it, across chunk boundaries and the cap.
    const boundaries = chunks.items.flatMap((c) => [c.first as number, c.last as number]);
    const afters = [0, 1, 2, 999, marker - 1, marker, marker + 1, 4001, 4002, 4003, 5000, ...boundaries];
    for (const after of new Set(afters.flatMap((a) => [a - 1, a, a + 1]).filter((a) => a >= 0))) {
      const expected = all.filter((l) => l.seq > after).map((l) => l.seq);
      expect((await readAll(id, after, 1000)).map((l) => l.seq)).toEqual(expected);
      for (const limit of [1, 37]) {
        const got = await readAll(id, after, limit, 3);
        expect(got.map((l) => l.seq)).toEqual(expected.slice(0, 3 * limit));
      }
    }
  });

  it("sends every subscriber each line once, in order, however it joins: before, mid-burst, after the end", async () => {
    const id = await deployment();
    let jitter = 0;
    broadcaster.delayMs = () => (jitter++ % 5 === 0 ? 2 : 0);
    const log = new LogWriter(deps, id, (l) => l);
    const joins: Promise<void>[] = [join(id, "c-before")];
    await joins[0];
    let seq = 0;
    for (let burst = 0; burst < 20; burst++) {
      for (let i = 0; i < 500; i++) log.write("stdout", `line ${++seq}`);
      if (burst === 3) joins.push(join(id, "c-early", 0));
      if (burst === 6) joins.push(join(id, "c-resume", 100));
      if (burst === 9) {
        // Mid-burst: lines are written while the subscription replays.
        joins.push(join(id, "c-mid", 0));
        for (let i = 0; i < 200; i++) log.write("stdout", `line ${++seq}`);
      }
      if (burst === 14) joins.push(join(id, "c-late", 2000));
      await new Promise((r) => setTimeout(r, 3));
    }
    await Promise.all(joins);
    await log.close();
    await setStatus(id, "succeeded");
    await settleReplays(deps, id);
    await join(id, "c-after", 50);
    broadcaster.delayMs = () => 0;

    expect(seq).toBe(10_200);
    expect(broadcaster.seqs("c-before")).toEqual(range(1, seq));
    expect(broadcaster.seqs("c-early")).toEqual(range(1, seq));
    expect(broadcaster.seqs("c-resume")).toEqual(range(101, seq));
    expect(broadcaster.seqs("c-mid")).toEqual(range(1, seq));
    expect(broadcaster.seqs("c-late")).toEqual(range(2001, seq));
    expect(broadcaster.seqs("c-after")).toEqual(range(51, seq));
  });

  it("finishes a replay that handed over just as the run ended", async () => {
    const id = await deployment();
    const log = new LogWriter(deps, id, (l) => l);
    for (let i = 1; i <= 300; i++) log.write("stdout", `line ${i}`);
    await log.close();
    // The replay sees the run still going and hands over; no fan-out comes after it.
    await join(id, "c-handover", 0);
    await setStatus(id, "failed");
    await settleReplays(deps, id);
    expect(broadcaster.seqs("c-handover")).toEqual(range(1, 300));
  });

  it("pauses a fast printer for a slow subscriber: memory stays bounded and nothing is lost", async () => {
    const id = await deployment();
    await join(id, "c-slow");
    broadcaster.delayMs = () => 3;
    const log = new LogWriter(deps, id, (l) => l);
    let peak = 0;
    const printed = 30_000;
    const result = await deps.executor.exec(
      {
        host: ssh.host,
        port: ssh.port,
        username: ssh.username,
        privateKey: ssh.clientKey.private,
        hostKeyFingerprint: null,
      },
      // 30,000 lines of 1 KB: about 30 MB, far more than the ~2 MiB the writer may hold.
      `awk 'BEGIN { pad = sprintf("%1000s", ""); for (i = 1; i <= ${printed}; i++) print i pad }'`,
      {
        timeoutMs: 120_000,
        connectTimeoutMs: 10_000,
        onLine: (stream, line) => {
          log.write(stream, line);
          peak = Math.max(peak, log.heldBytes);
        },
        flow: log,
      },
    );
    await log.close();
    broadcaster.delayMs = () => 0;
    expect(result.exitCode).toBe(0);
    expect(peak).toBeGreaterThan(1024 * 1024); // it did fall behind …
    expect(peak).toBeLessThan(2.5 * 1024 * 1024); // … and was held back
    const got = broadcaster.sent.get("c-slow") ?? [];
    expect(got.map((l) => l.seq)).toEqual(range(1, printed));
    expect(got.every((l, i) => l.line.startsWith(`${i + 1} `) && l.line.length === 1000 + String(i + 1).length)).toBe(
      true,
    );
    expect((await readAll(id, 0, 1000)).length).toBe(printed);
  }, 120_000);
});
