/**
 * Operating a running app on the embedded runtime (issue #17's bench):
 * - app logs: a line printed by `docker compose logs --follow` on the target →
 *   received by a WebSocket client subscribed to `app-logs:<appId>`;
 * - exec: `{"action":"exec"}` sent → its first output line, and → `exec-end`.
 *
 * The embedded runtime (its own DynamoDB Local) and a loopback SSH server run
 * in this process; the client is a real `ws` socket on the runtime's /ws. The
 * target's `docker` is the tests' stand-in (core/testing/operate.ts): it
 * prints the app's `compose.log` and follows what is appended, polling the
 * file every POLL_MS (set through the app's env). The bench appends one line
 * every 10 ms, each carrying the wall-clock ms of its append, and stamps each
 * line on arrival with the same clock (one machine): latency = arrival −
 * append, so it includes the stand-in's poll (≤ POLL_MS, ~POLL_MS/2 on average).
 */
import { appendFile, writeFile } from "node:fs/promises";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { composeLine, writeStandInDocker } from "@hoist/core/testing/operate";
import WebSocket from "ws";
import { calibrateClock, type Json, startBench, wallMs } from "./deploys.ts";
import { ms, removeDir, type Suite, type Summary, sleep, summarize, tempDir } from "./lib.ts";

const LINES = 300;
const WARMUP_LINES = 20;
const EXECS = 40;
const POLL_MS = 2;
const GOAL_P95_MS = 150;
const LINE = /^(\d+) (\d+(?:\.\d+)?)$/;

/** A `ws` client that hands each message, stamped on arrival, to whoever waits for it. */
class Socket {
  readonly messages: { m: Json; at: number }[] = [];
  private waiters: (() => void)[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data) => {
      this.messages.push({ m: JSON.parse(data.toString()) as Json, at: wallMs() });
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static open(url: string): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.once("open", () => resolve(new Socket(ws)));
      ws.once("error", reject);
    });
  }

  send(message: Json): number {
    const at = wallMs();
    this.ws.send(JSON.stringify(message));
    return at;
  }

  /** Resolves with the first message from `from` on that `match`es. */
  async next(from: number, match: (m: Json) => boolean, timeoutMs = 10_000): Promise<{ m: Json; at: number }> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const found = this.messages.slice(from).find((x) => match(x.m));
      if (found) return found;
      if (performance.now() > deadline) throw new Error("timed out waiting for a WebSocket message");
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  close(): void {
    this.ws.terminate();
  }
}

const row = (label: string, s: Summary, goal: string) => [
  label,
  s.n,
  ms(s.p50),
  ms(s.p95),
  goal,
  s.p95 <= GOAL_P95_MS || goal === "—" ? "✓" : "✗",
  ms(s.p99),
  ms(s.max),
];

export const operate: Suite = {
  name: "operate",
  description: "app logs: line printed by `docker compose logs -f` → WebSocket subscriber; exec start latency",
  async run(ctx) {
    calibrateClock();
    const load = [loadavg()[0] ?? Number.NaN];
    const bin = await tempDir("operate-bin");
    await writeStandInDocker(bin);
    const b = await startBench({ HOIST_APP_LOG_IDLE_SECONDS: "5" }, { sshPathPrefix: [bin] });
    let socket: Socket | undefined;
    try {
      const app = await b.makeApp("logs", "true");
      const log = join(app.dir, "compose.log");
      await writeFile(log, "");
      await b.call("PUT", `/api/apps/${app.id}/env`, { STANDIN_POLL_MS: String(POLL_MS) });
      socket = await Socket.open(`${b.runtime.wsUrl}?token=${encodeURIComponent(b.token)}`);
      const ws = socket;

      // ── app logs ──
      ctx.log("subscribing to app-logs and waiting for the tail to follow…");
      const from = ws.messages.length;
      ws.send({ action: "subscribe", channel: `app-logs:${app.id}` });
      await ws.next(from, (m) => m.type === "subscribed");
      const print = async (i: number) => {
        const at = wallMs();
        await appendFile(log, `${composeLine("web-1", Math.floor(at), `${i} ${at.toFixed(3)}`)}\n`);
      };
      // Warm-up lines until one arrives: the tail job is then following.
      const firstAt = ws.messages.length;
      for (let i = 1; ; i++) {
        await print(-i);
        const got = await ws.next(firstAt, (m) => m.type === "app-log", 200).catch(() => undefined);
        if (got || i > 200) break;
      }
      for (let i = 1; i <= WARMUP_LINES; i++) {
        await print(-1000 - i);
        await sleep(10);
      }
      ctx.log(`printing ${LINES} lines 10 ms apart…`);
      const start = ws.messages.length;
      for (let i = 1; i <= LINES; i++) {
        await print(i);
        await sleep(10);
      }
      const arrived = new Map<number, number>();
      const deadline = performance.now() + 10_000;
      while (arrived.size < LINES && performance.now() < deadline) {
        for (const { m, at } of ws.messages.slice(start)) {
          if (m.type !== "app-log") continue;
          for (const l of m.lines as { line: string }[]) {
            const x = LINE.exec(l.line);
            if (x && Number(x[1]) > 0) arrived.set(Number(x[1]), at - Number(x[2]));
          }
        }
        if (arrived.size < LINES) await sleep(50);
      }
      const logLatency = summarize([...arrived.values()]);
      ws.send({ action: "unsubscribe", channel: `app-logs:${app.id}` });

      // ── exec ──
      ctx.log(`${EXECS} execs, one at a time…`);
      const firstLine: number[] = [];
      const ended: number[] = [];
      for (let i = 0; i < EXECS + 5; i++) {
        const id = `bench-${i}`;
        const before = ws.messages.length;
        const sent = ws.send({ action: "exec", id, appId: app.id, command: "echo ready" });
        const line = await ws.next(before, (m) => m.id === id && m.type === "exec");
        const end = await ws.next(before, (m) => m.id === id && (m.type === "exec-end" || m.type === "error"));
        if (end.m.type !== "exec-end" || end.m.exitCode !== 0) throw new Error(`exec failed: ${JSON.stringify(end.m)}`);
        if (i < 5) continue; // warm-up
        firstLine.push(line.at - sent);
        ended.push(end.at - sent);
      }
      const viaHttp: number[] = [];
      for (let i = 0; i < EXECS + 5; i++) {
        const t0 = performance.now();
        const r = await b.call<{ exitCode: number }>(
          "POST",
          `/api/apps/${app.id}/exec`,
          { command: "echo ready" },
          200,
        );
        if (r.exitCode !== 0) throw new Error(`POST exec: ${JSON.stringify(r)}`);
        if (i >= 5) viaHttp.push(performance.now() - t0);
      }
      const execLine = summarize(firstLine);
      const execEnd = summarize(ended);
      load.push(loadavg()[0] ?? Number.NaN);

      return {
        tables: [
          {
            title: "operate — app logs and exec on the embedded runtime (ms)",
            columns: ["path", "n", "p50", "p95", "goal p95", "ok", "p99", "max"],
            rows: [
              row("line printed → app-logs subscriber", logLatency, `≤ ${GOAL_P95_MS}`),
              row("exec sent → first output line", execLine, `≤ ${GOAL_P95_MS}`),
              row("exec sent → exec-end", execEnd, "—"),
              row("POST /api/apps/:id/exec → answer", summarize(viaHttp), "—"),
            ],
            notes: [
              `${arrived.size}/${LINES} lines arrived (after ${WARMUP_LINES} warm-up lines); the stand-in docker polls compose.log every ${POLL_MS} ms.`,
              `exec: \`echo ready\` over a warm SSH connection, ${EXECS} in a row after 5 warm-up (ws handler → operate queue → SSH → post).`,
              `load average ${load.map((l) => l.toFixed(1)).join(" → ")} on ${cpus().length} CPUs.`,
            ],
          },
        ],
        data: { logLatency, execLine, execEnd, execHttp: summarize(viaHttp), lines: arrived.size, load },
      };
    } finally {
      socket?.close();
      await b.stop();
      await removeDir(bin);
    }
  },
};
