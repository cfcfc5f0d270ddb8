/**
 * Live deploy logs: a line printed on the SSH target → received by WebSocket
 * clients subscribed to `deployment:<id>`, at 1 and at 200 subscribers.
 *
 * The embedded runtime (its own DynamoDB Local) and a loopback SSH server run
 * in this process; the clients are real `ws` sockets on the runtime's /ws. The
 * deploy command waits for a `go` file, then prints LINES lines, each with its
 * own `date +%s%N`, 10 ms apart. The bench subscribes every client right after
 * the deployment is queued, waits until every subscription is live (replayed,
 * then taken over by the deploy worker), then creates `go`. Each client stamps every
 * message on arrival with the bench clock (Date anchored to performance.now);
 * the target runs on this machine, so both clocks agree (offset printed).
 */
import { rm, writeFile } from "node:fs/promises";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { subscribers } from "@hoist/core/realtime/publish";
import WebSocket from "ws";
import {
  type Bench,
  calibrateClock,
  clockOffset,
  type Json,
  type LogLine,
  nsToMs,
  startBench,
  wallMs,
} from "./deploys.ts";
import { ms, type Suite, type Summary, sleep, summarize, type Table } from "./lib.ts";

const LINES = 200;
const WARMUP_LINES = 20;
const SUBSCRIBERS = [1, 200];
const CONNECT_CONCURRENCY = 20;
/** The command waits at most this long (600 × 50 ms) for `go`, so an interrupted run leaves nothing behind for long. */
const GO_POLLS = 600;

/** Waits for `go`, prints `n` lines `<i> <epoch ns>` 10 ms apart, removes `go`. */
const command = (n: number) =>
  [
    `k=0; while [ ! -f go ] && [ $k -lt ${GO_POLLS} ]; do sleep 0.05; k=$((k+1)); done`,
    `i=1; while [ $i -le ${n} ]; do echo "$i $(date +%s%N)"; sleep 0.01; i=$((i+1)); done`,
    "rm -f go",
  ].join("; ");

const LINE = /^(\d+) (\d{10,})$/;

interface Arrival {
  /** Line number printed by the command (1..n). */
  i: number;
  /** The log seq Hoist gave it. */
  seq: number;
  printed: number;
  /** `ts` of the stored line: when Hoist read it from SSH (Date.now(), ms resolution). */
  received: number;
  arrived: number;
}

/** A `ws` client that stamps each message on arrival. */
class Client {
  readonly arrivals = new Map<string, Arrival[]>();
  readonly statuses: { deploymentId: string; status: string }[] = [];
  readonly replies: Json[] = [];
  /** Lines per `log` message, for the micro-batch size. */
  readonly batchSizes: number[] = [];
  duplicates = 0;

  private constructor(readonly socket: WebSocket) {
    socket.on("message", (data) => {
      const arrived = wallMs();
      const m = JSON.parse(data.toString()) as Json;
      if (m.type === "log") {
        const depId = String(m.deploymentId);
        const list = this.arrivals.get(depId) ?? [];
        this.arrivals.set(depId, list);
        const lines = m.lines as LogLine[];
        this.batchSizes.push(lines.length);
        for (const l of lines) {
          const x = l.stream === "stdout" ? LINE.exec(l.line) : null;
          if (!x) continue;
          const i = Number(x[1]);
          if (list.some((a) => a.i === i)) this.duplicates++;
          else list.push({ i, seq: l.seq, printed: nsToMs(x[2] as string), received: l.ts, arrived });
        }
      } else if (m.type === "status") {
        this.statuses.push({ deploymentId: String(m.id), status: String(m.status) });
      } else {
        this.replies.push(m);
      }
    });
  }

  static open(wsUrl: string, token: string): Promise<Client> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(`${wsUrl}?token=${encodeURIComponent(token)}`);
      socket.once("open", () => resolve(new Client(socket)));
      socket.once("error", reject);
      socket.once("unexpected-response", (_req, res) => reject(new Error(`WebSocket upgrade: HTTP ${res.statusCode}`)));
    });
  }

  subscribe(channel: string): void {
    this.socket.send(JSON.stringify({ action: "subscribe", channel }));
  }

  replied(channel: string): Json | undefined {
    return this.replies.find((m) => m.channel === channel || m.type === "error");
  }

  lines(deploymentId: string): Arrival[] {
    return this.arrivals.get(deploymentId) ?? [];
  }

  close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.socket.terminate();
        resolve();
      }, 2000);
      this.socket.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.close();
    });
  }
}

async function until(what: string, timeoutMs: number, pollMs: number, check: () => boolean | Promise<boolean>) {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(pollMs);
  }
}

interface Round {
  subscribers: number;
  lines: number;
  /** Deployment queued → every subscription live (the go file written). */
  subscribeMs: number;
  /** print → arrival, over all lines × clients. */
  latency: Summary;
  /** The same over the first and the last 10 % of the lines (does the backlog grow?). */
  early: Summary;
  late: Summary;
  /** print → Hoist read it (line ts, ms resolution), over lines. */
  toHoist: Summary;
  /** Hoist read it → arrival (micro-batch, subscriber query, post, ws), over lines × clients. */
  afterRead: Summary;
  /** Per line: last client's arrival − first client's. */
  spread: Summary;
  /** Lines printed per second (first → last print). */
  printRate: number;
  /** Line deliveries (lines × clients) per second, first print → last arrival. */
  deliveryRate: number;
  /** (line, client) pairs missing. */
  lostPairs: number;
  /** Lines at least one client did not get. */
  lostLines: number;
  duplicates: number;
  /** Mean lines per `log` message (one message per fan-out and subscriber, split at 32 KB). */
  batchMean: number;
  status: string;
  /** performance.now() when `go` was written: the lines start after it. */
  goAt: number;
}

async function round(bench: Bench, app: { id: string; dir: string }, clients: Client[], lines: number): Promise<Round> {
  const go = join(app.dir, "go");
  await rm(go, { force: true });
  for (const c of clients) {
    c.batchSizes.length = 0;
    c.duplicates = 0;
  }
  const t0 = performance.now();
  const id = (await bench.call<{ deployment: { id: string } }>("POST", `/api/apps/${app.id}/deployments`, {}, 202))
    .deployment.id;
  const channel = `deployment:${id}`;
  for (const c of clients) c.subscribe(channel);
  await until(`${clients.length} subscribe replies`, 30_000, 5, () => clients.every((c) => c.replied(channel)));
  const refused = clients.map((c) => c.replied(channel)).find((m) => m?.type === "error");
  if (refused) throw new Error(`subscribe refused: ${JSON.stringify(refused)}`);
  // "subscribed" is sent before the subscription is stored and replayed: wait until every one is live
  // (replayed, then taken over by the deploy worker, which does that while the command is quiet).
  await until(`${clients.length} live subscriptions`, 30_000, 10, async () => {
    const subs = await subscribers(bench.runtime.deps, channel);
    return subs.length === clients.length && subs.every((s) => s.live === true);
  });
  const subscribeMs = performance.now() - t0;
  const goAt = performance.now();
  await writeFile(go, "");
  const dep = await bench.finished(id, 60_000, 50);
  // The final status message follows the last fan-out on the same channel.
  await until("every client to see the end", 20_000, 20, () =>
    clients.every((c) => c.statuses.some((s) => s.deploymentId === id && s.status === dep.status)),
  );
  await sleep(200);

  const all = clients.flatMap((c) => c.lines(id));
  let lostPairs = 0;
  const lostLines = new Set<number>();
  for (const c of clients) {
    const got = new Set(c.lines(id).map((a) => a.i));
    for (let i = 1; i <= lines; i++) {
      if (!got.has(i)) {
        lostPairs++;
        lostLines.add(i);
      }
    }
  }
  const byLine = new Map<number, Arrival[]>();
  for (const a of all) byLine.set(a.i, [...(byLine.get(a.i) ?? []), a]);
  const once = [...byLine.values()].map((v) => v[0] as Arrival);
  const printed = once.map((a) => a.printed).sort((a, b) => a - b);
  const firstPrint = printed[0] ?? Number.NaN;
  const lastPrint = printed.at(-1) ?? Number.NaN;
  const lastArrival = Math.max(...all.map((a) => a.arrived));
  const batches = clients.flatMap((c) => c.batchSizes);
  const tenth = Math.max(1, Math.floor(lines / 10));
  return {
    subscribers: clients.length,
    lines,
    subscribeMs,
    latency: summarize(all.map((a) => a.arrived - a.printed)),
    early: summarize(all.filter((a) => a.i <= tenth).map((a) => a.arrived - a.printed)),
    late: summarize(all.filter((a) => a.i > lines - tenth).map((a) => a.arrived - a.printed)),
    toHoist: summarize(once.map((a) => a.received - a.printed)),
    afterRead: summarize(all.map((a) => a.arrived - a.received)),
    spread: summarize(
      [...byLine.values()].map((v) => Math.max(...v.map((a) => a.arrived)) - Math.min(...v.map((a) => a.arrived))),
    ),
    printRate: ((printed.length - 1) / (lastPrint - firstPrint)) * 1000,
    deliveryRate: (all.length / (lastArrival - firstPrint)) * 1000,
    lostPairs,
    lostLines: lostLines.size,
    duplicates: clients.reduce((n, c) => n + c.duplicates, 0),
    batchMean: batches.reduce((a, b) => a + b, 0) / Math.max(1, batches.length),
    status: dep.status,
    goAt,
  };
}

export const realtime: Suite = {
  name: "realtime",
  description: `deploy log line printed over SSH → WebSocket client, ${SUBSCRIBERS.join(" and ")} subscribers`,
  async run(ctx) {
    const load = loadavg()[0] ?? Number.NaN;
    let bench: Bench | undefined;
    const clients: Client[] = [];
    const rounds: (Round & { postMs: Summary })[] = [];
    let clock = { offsetMs: Number.NaN, boundMs: Number.NaN };
    let connectMs = Number.NaN;
    const posts: { at: number; ms: number }[] = [];
    try {
      ctx.log("starting the embedded runtime (DynamoDB Local) and a loopback SSH server…");
      bench = await startBench();
      const b = bench;
      calibrateClock();
      clock = clockOffset();
      const warm = await b.makeApp("warm", command(WARMUP_LINES));
      const live = await b.makeApp("live", command(LINES));

      // Timing only: each WebSocket message is one post to the embedded gateway (in process).
      const deps = b.runtime.deps;
      const post = deps.broadcaster.post.bind(deps.broadcaster);
      deps.broadcaster.post = async (connectionId, message) => {
        const t0 = performance.now();
        try {
          return await post(connectionId, message);
        } finally {
          posts.push({ at: t0, ms: performance.now() - t0 });
        }
      };

      const wsUrl = b.runtime.wsUrl;
      clients.push(await Client.open(wsUrl, b.token));
      ctx.log(`warm-up: ${WARMUP_LINES} lines to 1 subscriber…`);
      await round(b, warm, clients, WARMUP_LINES);

      for (const n of SUBSCRIBERS) {
        if (clients.length < n) {
          ctx.log(`opening ${n - clients.length} more WebSocket clients…`);
          const t0 = performance.now();
          let opened = clients.length;
          const opener = async () => {
            while (opened < n) {
              opened++;
              clients.push(await Client.open(wsUrl, b.token));
            }
          };
          await Promise.all(Array.from({ length: CONNECT_CONCURRENCY }, opener));
          connectMs = performance.now() - t0;
        }
        ctx.log(`${LINES} lines, 10 ms apart, to ${n} subscriber(s)…`);
        posts.length = 0;
        const r = await round(b, live, clients.slice(0, n), LINES);
        // Posts after `go`: the live lines and the final status (not the subscribe replies and replays).
        rounds.push({ ...r, postMs: summarize(posts.filter((p) => p.at >= r.goAt).map((p) => p.ms)) });
        ctx.log(`  p50 ${ms(r.latency.p50)} ms, p99 ${ms(r.latency.p99)} ms, lost ${r.lostPairs}`);
      }
    } finally {
      ctx.log("closing sockets, stopping the SSH server and the runtime…");
      await Promise.all(clients.map((c) => c.close()));
      await bench?.stop();
    }

    const latency: Table = {
      title: `realtime — deploy log line printed on the target → WebSocket client (${LINES} lines, 10 ms apart, subscribed before the first)`,
      columns: ["subs", "p50 ms", "p95 ms", "goal p95", "p99 ms", "max ms", "lines/s printed", "deliveries/s", "lost"],
      rows: rounds.map((r) => [
        r.subscribers,
        ms(r.latency.p50),
        ms(r.latency.p95),
        `≤ ${r.subscribers === 1 ? 100 : 250}`,
        ms(r.latency.p99),
        ms(r.latency.max),
        r.printRate.toFixed(0),
        r.deliveryRate.toFixed(0),
        r.lostPairs,
      ]),
      notes: [
        "Latency = client arrival (bench clock) − the line's own `date +%s%N`, over every line × client; deliveries/s = lines × clients ÷ (first print → last arrival).",
        ...rounds.map(
          (r) =>
            `${r.subscribers} sub(s): ${r.status}; lost: ${r.lostPairs} (line, client) pairs / ${r.lostLines} lines, ${r.duplicates} duplicates; all subscriptions live ${ms(r.subscribeMs)} ms after the deploy POST.`,
        ),
        `Clocks: bench − \`date +%s%N\` = ${clock.offsetMs.toFixed(3)} ms (± ${clock.boundMs.toFixed(3)} ms). 1-min load average at the start: ${load.toFixed(2)} on ${cpus().length} cores.`,
        `The deploy command waits for a \`go\` file the bench writes once every subscription is live (read from the table), then prints.${Number.isFinite(connectMs) ? ` Opening the other sockets took ${ms(connectMs)} ms.` : ""}`,
      ],
    };
    const cell = (x: Summary, p: "p50" | "p99") => ms(x[p]);
    const phase = (label: string, f: (r: Round & { postMs: Summary }) => Summary) => [
      label,
      ...rounds.flatMap((r) => [cell(f(r), "p50"), cell(f(r), "p99")]),
    ];
    const breakdown: Table = {
      title: "realtime — where the time goes (ms)",
      columns: ["phase", ...rounds.flatMap((r) => [`${r.subscribers} sub p50`, `${r.subscribers} sub p99`])],
      rows: [
        phase("printed → read by Hoist (line ts, 1 ms steps)", (r) => r.toHoist),
        phase("read → client (micro-batch, subscriber query, post, ws)", (r) => r.afterRead),
        phase("total", (r) => r.latency),
        phase(`  total, first ${Math.max(1, Math.floor(LINES / 10))} lines`, (r) => r.early),
        phase(`  total, last ${Math.max(1, Math.floor(LINES / 10))} lines`, (r) => r.late),
        phase("fan-out: last client − first client, per line", (r) => r.spread),
        phase("one post (in process to the gateway's socket)", (r) => r.postMs),
      ],
      notes: [
        "LogWriter (log-writer.ts) publishes without waiting on storage: a fan-out starts on the next event-loop turn after a line is read",
        "and carries every line that arrived meanwhile; one gsi1 query for the channel's subscribers, then one post per subscriber,",
        "32 at a time (log-fanout.ts). Chunks are written to DynamoDB alongside, off this path.",
        ...rounds.map(
          (r) =>
            `${r.subscribers} sub(s): ${r.batchMean.toFixed(1)} lines per log message; ${r.postMs.n} gateway posts after go.`,
        ),
        "Clients, runtime, gateway, SSH server and DynamoDB Local (java) share this machine's cores.",
      ],
    };
    return {
      tables: [latency, breakdown],
      data: { lines: LINES, loadAverage: load, rounds, clock },
    };
  },
};
