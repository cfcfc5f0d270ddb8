/**
 * What plans cost per request: the latency that usage metering and the
 * plans' limit checks add to an authenticated request, to creates and deletes
 * that take and release a counted limit, and to a signed push's ingest
 * (p50/p95/p99, with and without).
 *
 * Two embedded runtimes (startBench: startRuntime in this process, each with
 * its own DynamoDB Local and a loopback SSH server), both up for the whole
 * run and driven over real HTTP in turns ordered with, without, without, with
 * (so a drift of this machine's speed falls on both alike):
 * - with: a plans file of `limited` (the default: every limit set, too high
 *   to refuse) and `open`; HOIST_RATE_LIMIT_API=1e6, so each API request
 *   counts the per-IP window and the per-user window (judged by the plan's
 *   requestsPerMinute); the usage meter counts each request;
 * - without: a plans file of `open` alone (no limit in any plan, so a webhook
 *   reads no plans or usage); HOIST_RATE_LIMIT_API=0 (no windows); the
 *   meter's count replaced by a no-op.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Bench, delivery, postDelivery, pushTemplate, startBench, WEBHOOK_SECRET } from "./deploys.ts";
import { freePort, ms, removeDir, type Suite, summarize, type Table, tempDir } from "./lib.ts";

const PRICES = { requests: 0.01, deployments: 1, deploySeconds: 0.05, appRunningMinutes: 0.5 };
/** Every limit, none reached during the run. */
const LIMITED = {
  servers: 1000,
  apps: 1000,
  runningApps: 1000,
  deployMinutes: 1_000_000,
  appMinutes: 10_000_000,
  requestsPerMinute: 1_000_000,
};
const WITH_PLANS = {
  default: "limited",
  plans: { limited: { limits: LIMITED, prices: PRICES }, open: { limits: {}, prices: PRICES } },
};
const WITHOUT_PLANS = { default: "open", plans: { open: { limits: {}, prices: PRICES } } };
/** HOIST_RATE_LIMIT_API of the `with` runtime: the per-IP window's limit, never reached. */
const API_LIMIT = 1_000_000;
const REPO = "bench/plans";

type SideName = "with" | "without";

interface Side {
  name: SideName;
  bench: Bench;
  /** A server at a closed port: apps there deploy and fail at TCP connect, no SSH. */
  nowhere: string;
}

/** Latencies (ms) by phase of one attempt, e.g. `{ "POST /api/servers": 8.1, "DELETE /api/servers/:id": 6.3 }`. */
type Phases = Record<string, number>;

interface Measurement {
  label: string;
  concurrency: number;
  /** Attempts per side, split over its two turns. */
  attempts: number;
  /** Attempts per side before the first turn (not counted). */
  warmup: number;
  /** Also a req/s row (attempts of one request). */
  rate: boolean;
  attempt(side: Side, i: number): Promise<Phases>;
  /** After each turn and the warm-up, untimed (the deploy queue drained). */
  settle?(side: Side): Promise<unknown>;
}

interface Tally {
  attempts: number;
  ok: number;
  elapsedMs: number;
  phases: Map<string, number[]>;
  problems: Record<string, number>;
}

const tally = (): Tally => ({ attempts: 0, ok: 0, elapsedMs: 0, phases: new Map(), problems: {} });

async function timeOf(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** `n` attempts, `concurrency` at a time (a closed loop), added to `into`; a throwing attempt counts as a problem. */
async function turn(into: Tally, n: number, concurrency: number, attempt: (i: number) => Promise<Phases>) {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < n; i = next++) {
      try {
        const phases = await attempt(i);
        into.ok++;
        for (const [phase, value] of Object.entries(phases)) {
          const list = into.phases.get(phase) ?? [];
          list.push(value);
          into.phases.set(phase, list);
        }
      } catch (err) {
        const key = (err instanceof Error ? err.message : String(err)).slice(0, 160);
        into.problems[key] = (into.problems[key] ?? 0) + 1;
      }
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  into.elapsedMs += performance.now() - t0;
  into.attempts += n;
}

async function startSide(name: SideName, plansFile: string): Promise<Side> {
  const bench = await startBench({
    HOIST_PLANS_FILE: plansFile,
    HOIST_GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET,
    HOIST_RATE_LIMIT_API: name === "with" ? String(API_LIMIT) : "0",
  });
  try {
    // Without metering: requireUser's count does nothing (and the meter's flushes find nothing to write).
    if (name === "without") bench.runtime.deps.usage.count = () => undefined;
    const nowhere = (await bench.call<{ id: string }>("POST", "/api/servers", serverBody("nowhere", await freePort())))
      .id;
    await bench.makeApp("push", "true", { repo: REPO, serverId: nowhere });
    return { name, bench, nowhere };
  } catch (err) {
    await bench.stop();
    throw err;
  }
}

let created = 0;
function serverBody(name: string, sshPort: number) {
  return { name, address: "127.0.0.1", sshPort, sshUser: "deploy", password: "not-used" };
}

function measurements(): Measurement[] {
  const template = pushTemplate();
  return [
    ...[1, 8].map(
      (concurrency): Measurement => ({
        label: "GET /api/auth/verify",
        concurrency,
        attempts: concurrency === 1 ? 1000 : 2000,
        warmup: 100,
        rate: true,
        attempt: async ({ bench }) => ({
          "GET /api/auth/verify → 200": await timeOf(() => bench.call("GET", "/api/auth/verify")),
        }),
      }),
    ),
    {
      label: "server create + delete",
      concurrency: 1,
      attempts: 150,
      warmup: 10,
      rate: false,
      attempt: async ({ bench }) => {
        let id = "";
        const create = await timeOf(async () => {
          id = (await bench.call<{ id: string }>("POST", "/api/servers", serverBody(`tmp-${created++}`, 22))).id;
        });
        const remove = await timeOf(() => bench.call("DELETE", `/api/servers/${id}`));
        return { "POST /api/servers → 201": create, "DELETE /api/servers/:id → 200": remove };
      },
    },
    {
      label: "app create + delete",
      concurrency: 1,
      attempts: 150,
      warmup: 10,
      rate: false,
      attempt: async ({ bench, nowhere }) => {
        const name = `tmp-${created++}`;
        let id = "";
        const create = await timeOf(async () => {
          id = (
            await bench.call<{ id: string }>("POST", "/api/apps", {
              name,
              projectId: bench.projectId,
              serverId: nowhere,
              cdPath: `/srv/${name}`,
              commands: { deploy: "true" },
            })
          ).id;
        });
        const remove = await timeOf(() => bench.call("DELETE", `/api/apps/${id}`));
        return { "POST /api/apps → 201": create, "DELETE /api/apps/:id → 200": remove };
      },
    },
    {
      label: "signed push",
      concurrency: 1,
      attempts: 200,
      warmup: 20,
      rate: true,
      attempt: async ({ bench }) => {
        const d = delivery(template, REPO, `p${created++}`);
        const push = await timeOf(async () => {
          const a = await postDelivery(bench.url, d);
          if (a.status !== 202 || a.reply.status !== "accepted") throw new Error(`HTTP ${a.status} ${a.reply.status}`);
        });
        return { "POST /api/webhooks/github (push) → 202": push };
      },
    },
  ];
}

interface Result {
  measurement: Measurement;
  by: Record<SideName, Tally>;
}

async function settle(m: Measurement, side: Side, into: Tally): Promise<void> {
  try {
    await m.settle?.(side);
  } catch (err) {
    const key = `settling: ${err instanceof Error ? err.message : String(err)}`;
    into.problems[key] = (into.problems[key] ?? 0) + 1;
  }
}

async function measure(m: Measurement, sides: Record<SideName, Side>, log: (message: string) => void) {
  const by: Record<SideName, Tally> = { with: tally(), without: tally() };
  for (const side of Object.values(sides)) {
    await turn(tally(), m.warmup, m.concurrency, (i) => m.attempt(side, i));
    await settle(m, side, by[side.name]);
  }
  const half = Math.ceil(m.attempts / 2);
  for (const name of ["with", "without", "without", "with"] as const) {
    log(`${m.label} at concurrency ${m.concurrency}: ${half} attempts, ${name}…`);
    await turn(by[name], half, m.concurrency, (i) => m.attempt(sides[name], i));
    await settle(m, sides[name], by[name]);
  }
  return { measurement: m, by };
}

// ───────────────────────────── the table ─────────────────────────────

const signed = (v: number, format: (x: number) => string) =>
  Number.isFinite(v) ? `${v < 0 ? "−" : "+"}${format(Math.abs(v))}` : "–";
const percent = (d: number, base: number) => signed((100 * d) / base, (x) => `${x.toFixed(1)} %`);
const rps = (t: Tally) => t.ok / (t.elapsedMs / 1000);

function rows(r: Result): (string | number)[][] {
  const { with: w, without: o } = r.by;
  const out: (string | number)[][] = [];
  for (const phase of w.phases.keys()) {
    const sw = summarize(w.phases.get(phase) ?? []);
    const so = summarize(o.phases.get(phase) ?? []);
    const figures = [
      ["p50 ms", sw.p50, so.p50],
      ["p95 ms", sw.p95, so.p95],
      ["p99 ms", sw.p99, so.p99],
    ] as const;
    for (const [i, [figure, a, b]] of figures.entries()) {
      out.push([
        i === 0 ? phase : "",
        i === 0 ? r.measurement.concurrency : "",
        i === 0 ? `${sw.n}/${so.n}` : "",
        figure,
        ms(a),
        ms(b),
        signed(a - b, ms),
        percent(a - b, b),
      ]);
    }
    if (r.measurement.rate) {
      const [a, b] = [rps(w), rps(o)];
      out.push([
        "",
        "",
        "",
        "req/s",
        a.toFixed(0),
        b.toFixed(0),
        signed(a - b, (x) => x.toFixed(0)),
        percent(a - b, b),
      ]);
    }
  }
  return out;
}

export const plans: Suite = {
  name: "plans",
  description: "latency that metering and plan limit checks add to an API request, creates/deletes and a push ingest",
  async run(ctx) {
    const dir = await tempDir("plans");
    const withFile = join(dir, "with.json");
    const withoutFile = join(dir, "without.json");
    await writeFile(withFile, JSON.stringify(WITH_PLANS));
    await writeFile(withoutFile, JSON.stringify(WITHOUT_PLANS));
    const started: Side[] = [];
    const results: Result[] = [];
    const usage: Record<string, { plan: string; requests: number }> = {};
    try {
      ctx.log("starting two embedded runtimes (with and without plan limits and metering)…");
      started.push(await startSide("with", withFile));
      started.push(await startSide("without", withoutFile));
      const sides = { with: started[0] as Side, without: started[1] as Side };
      for (const m of measurements()) results.push(await measure(m, sides, ctx.log));
      for (const side of started) {
        usage[side.name] = await side.bench.call<{ plan: string; requests: number }>("GET", "/api/usage");
      }
    } finally {
      ctx.log("stopping the runtimes…");
      await Promise.all(started.map((s) => s.bench.stop()));
      await removeDir(dir);
    }

    const problems = results.flatMap((r) =>
      (["with", "without"] as const).flatMap((side) =>
        Object.entries(r.by[side].problems).map(
          ([k, n]) => `! ${r.measurement.label} c=${r.measurement.concurrency} (${side}): ${n}× ${k}`,
        ),
      ),
    );
    const seen = (side: SideName) =>
      usage[side] ? `plan "${usage[side].plan}", ${usage[side].requests} requests metered` : "–";
    const table: Table = {
      title:
        "plans — what metering and limit checks add (with: every limit set, none reached; without: no limits, no windows, no metering)",
      columns: ["request", "conc", "n", "figure", "with", "without", "difference", "Δ %"],
      rows: results.flatMap(rows),
      notes: [
        "Per side and measurement, two turns in the order with, without, without, with, after a warm-up on each; both runtimes up all along.",
        "API request (GET /api/auth/verify; every authenticated route pays the same): with, the per-IP window's UpdateItem (alongside the",
        "token's BatchGetItem), then requireUser's per-user window UpdateItem (awaited; limit: the plan's requestsPerMinute), and usage.count",
        "(in memory; the meter writes once a second in the background); without, the BatchGetItem alone.",
        "Creates and deletes: the same transaction on both sides (the counts item's ADD is conditional on `n < limit` with, on the count",
        "existing without; the plan comes with the request's user, no read); the difference is the request's windows and metering above.",
        "Signed push (webhooks pass no rate window and no meter): with, one BatchGetItem of the owner's user and usage item after the apps",
        "query, and a ConditionCheck on the usage item in the transaction; without, neither (no configured plan limits deploy minutes).",
        "Pushes come last (after them each runtime's deploy worker stays busy); the app's server is at a closed port, so each deployment",
        "fails at connect; the worker runs alongside the pushes.",
        `HOIST_PLANS_FILE with: {limited (default): ${JSON.stringify(LIMITED)}, open: {}}; without: {open: {}}. HOIST_RATE_LIMIT_API: ${API_LIMIT} / 0.`,
        `GET /api/usage at the end — with: ${seen("with")}; without: ${seen("without")}.`,
        "difference and Δ %: with − without (for req/s, negative is slower). Client, servers, workers and both DynamoDB Locals share this machine.",
        ...problems,
      ],
    };
    return {
      tables: [table],
      data: {
        plans: { with: WITH_PLANS, without: WITHOUT_PLANS },
        apiLimit: API_LIMIT,
        usage,
        results: results.map((r) => ({
          label: r.measurement.label,
          concurrency: r.measurement.concurrency,
          ...Object.fromEntries(
            (["with", "without"] as const).map((side) => {
              const t = r.by[side];
              return [
                side,
                {
                  attempts: t.attempts,
                  ok: t.ok,
                  rps: rps(t),
                  problems: t.problems,
                  phases: Object.fromEntries([...t.phases].map(([phase, v]) => [phase, summarize(v)])),
                },
              ];
            }),
          ),
        })),
      },
    };
  },
};
