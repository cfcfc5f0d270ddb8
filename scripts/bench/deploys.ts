/**
 * The deploy path end to end on the embedded runtime (startRuntime in this
 * process, its own DynamoDB Local) with a loopback SSH server (ssh2's Server,
 * commands run by /bin/sh on this machine), driven over real HTTP:
 *
 * (a) signed GitHub push (a real @octokit/webhooks-examples payload) → 202:
 *     req/s and latency at concurrency 1 and 8, and a redelivery (duplicate);
 *     beside each, DynamoDB Local's raw floor (a 3-put TransactWriteItems at
 *     the same concurrency) and the ingest's share of it;
 * (b) push POST sent → the deploy command starts on the target (it records
 *     `date +%s%N`), 30 sequential pushes;
 * (Deploy log throughput and memory: the logs suite, scripts/bench/logs.ts.)
 *
 * The target and the bench share this machine, so the bench's clock (Date
 * calibrated to sub-millisecond with performance.now) and `date +%s%N` on the
 * target agree; the offset between them is measured and printed.
 *
 * Also exports the pieces the realtime suite shares (runtime + SSH + user).
 */
import { execFileSync } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { mkdir, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { type QueueJobItem, queueJobKeys, type TableQueue } from "@hoist/core/adapters/local/table-queue";
import { loadConfig } from "@hoist/core/config";
import { createLogger } from "@hoist/core/logger";
import type { Executor } from "@hoist/core/servers/ssh";
import { cond, type Item, type Store, type TransactOp } from "@hoist/core/store/store";
import { UNLIMITED_PLANS_FILE } from "@hoist/core/testing/plans";
import { startTestSshServer, type TestSshServer } from "@hoist/core/testing/ssh-server";
import { type Runtime, startRuntime } from "@hoist/local/runtime";
import {
  driveCells,
  freePort,
  ms,
  removeDir,
  type Suite,
  type Summary,
  sleep,
  summarize,
  type Table,
  tempDir,
} from "./lib.ts";

// ───────────────────────────── shared with realtime.ts ─────────────────────────────

/** Wall-clock milliseconds with sub-millisecond resolution: Date.now() anchored once to performance.now(). */
let clockBase = 0;
let clockPerf0 = 0;
export function calibrateClock(): void {
  const start = Date.now();
  const limit = performance.now() + 5;
  let now = start;
  // Anchor on the instant Date.now() ticks, so the base is exact to a few µs.
  while (now === start && performance.now() < limit) now = Date.now();
  clockPerf0 = performance.now();
  clockBase = now;
}
export function wallMs(): number {
  if (clockBase === 0) calibrateClock();
  return clockBase + (performance.now() - clockPerf0);
}

/** `date +%s%N` output → epoch ms (µs precision; the ns count does not fit a double). */
export function nsToMs(text: string): number {
  return Number(BigInt(text.trim()) / 1000n) / 1000;
}

/**
 * The bench clock minus `date +%s%N` run here (what the target's commands
 * use), and the bound on that figure (half the fork's round trip; the best of 5).
 */
export function clockOffset(): { offsetMs: number; boundMs: number } {
  let best = { offsetMs: Number.NaN, boundMs: Number.POSITIVE_INFINITY };
  for (let i = 0; i < 5; i++) {
    const before = wallMs();
    const out = execFileSync("date", ["+%s%N"], { encoding: "utf8" });
    const after = wallMs();
    if ((after - before) / 2 < best.boundMs)
      best = { offsetMs: (before + after) / 2 - nsToMs(out), boundMs: (after - before) / 2 };
  }
  return best;
}

export type Json = Record<string, unknown>;

export interface Deployment {
  id: string;
  status: string;
  queuedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  error: string | null;
}
export interface LogLine {
  seq: number;
  ts: number;
  stream: string;
  line: string;
}

export interface Bench {
  runtime: Runtime;
  url: string;
  ssh: TestSshServer;
  token: string;
  serverId: string;
  projectId: string;
  /** JSON over HTTP with the user's token; throws on an unexpected status (default 200, POST 201). */
  call<T = Json>(method: string, path: string, body?: unknown, expect?: number): Promise<T>;
  /** An app on the loopback SSH server (or `serverId`), cdPath `<ssh cwd>/<name>`. */
  makeApp(
    name: string,
    deploy: string,
    opts?: { repo?: string; serverId?: string },
  ): Promise<{ id: string; dir: string }>;
  /** Polls GET /api/deployments/:id until it is finished. */
  finished(id: string, timeoutMs?: number, pollMs?: number): Promise<Deployment>;
  /** Every stored log line of a deployment, page after page. */
  allLines(id: string): Promise<LogLine[]>;
  /** Resolves when the deploy queue holds no job (waiting or leased); returns how long that took. */
  drained(timeoutMs?: number, pollMs?: number): Promise<number>;
  stop(): Promise<void>;
}

/**
 * The embedded runtime (its own DynamoDB Local, silent logs, no rate limits,
 * no status sweep) on a fresh temp dir, a loopback SSH server, a registered
 * user, a server pointing at the SSH server and a project.
 */
export async function startBench(
  env: Record<string, string> = {},
  opts: { sshPathPrefix?: string[] } = {},
): Promise<Bench> {
  // As main.ts: the SDK's notice about its future Node requirement is noise here.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  const dataDir = await tempDir("deploy-data");
  const sshDir = await tempDir("deploy-ssh");
  let runtime: Runtime | undefined;
  let ssh: TestSshServer | undefined;
  const stop = async () => {
    await ssh?.stop().catch(() => undefined);
    await runtime?.stop().catch(() => undefined);
    await removeDir(sshDir);
    await removeDir(dataDir);
  };
  try {
    runtime = await startRuntime(
      loadConfig({
        PORT: "0",
        HOIST_DATA_DIR: dataDir,
        HOIST_LOG_LEVEL: "silent",
        HOIST_RATE_LIMIT_AUTH: "0",
        HOIST_RATE_LIMIT_API: "0",
        HOIST_STATUS_SWEEP_SECONDS: "0",
        HOIST_PLANS_FILE: UNLIMITED_PLANS_FILE,
        ...env,
      }),
      createLogger("silent"),
    );
    ssh = await startTestSshServer({ cwd: sshDir, pathPrefix: opts.sshPathPrefix });
    const url = runtime.url;
    const rt = runtime;
    const target = ssh;
    let token = "";
    const call = async <T = Json>(method: string, path: string, body?: unknown, expect?: number): Promise<T> => {
      const headers: Record<string, string> = {};
      if (token) headers.authorization = `Bearer ${token}`;
      if (body !== undefined) headers["content-type"] = "application/json";
      const res = await fetch(`${url}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      const want = expect ?? (method === "POST" ? 201 : 200);
      if (res.status !== want) throw new Error(`${method} ${path}: HTTP ${res.status} (expected ${want}): ${text}`);
      return (text ? JSON.parse(text) : {}) as T;
    };
    token = (
      await call<{ token: string }>("POST", "/api/auth/register", {
        username: "bench",
        email: "bench@example.com",
        password: "correct horse battery staple",
      })
    ).token;
    const serverId = (
      await call<{ id: string }>("POST", "/api/servers", {
        name: "box",
        address: target.host,
        sshPort: target.port,
        sshUser: target.username,
        privateKey: target.clientKey.private,
      })
    ).id;
    const projectId = (await call<{ id: string }>("POST", "/api/projects", { name: "bench" })).id;

    const finished = async (id: string, timeoutMs = 60_000, pollMs = 10) => {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const d = await call<Deployment>("GET", `/api/deployments/${id}`);
        if (["succeeded", "failed", "cancelled"].includes(d.status)) return d;
        if (performance.now() > deadline) throw new Error(`deployment ${id} still ${d.status} after ${timeoutMs} ms`);
        await sleep(pollMs);
      }
    };
    return {
      runtime: rt,
      url,
      ssh: target,
      token,
      serverId,
      projectId,
      call,
      async makeApp(name, deploy, opts = {}) {
        const dir = join(target.cwd, name);
        await mkdir(dir, { recursive: true });
        const app = await call<{ id: string }>("POST", "/api/apps", {
          name,
          projectId,
          serverId: opts.serverId ?? serverId,
          cdPath: dir,
          commands: { deploy },
          ...(opts.repo
            ? { repository: { fullName: opts.repo, branch: "main", autoDeploy: true, deployOn: "push" } }
            : {}),
        });
        return { id: app.id, dir };
      },
      finished,
      async allLines(id) {
        const lines: LogLine[] = [];
        let after = 0;
        for (;;) {
          const page = await call<{ items: LogLine[]; nextCursor: string | null }>(
            "GET",
            `/api/deployments/${id}/logs?after=${after}&limit=1000`,
          );
          lines.push(...page.items);
          if (!page.nextCursor) return lines;
          after = Number(page.nextCursor);
        }
      },
      async drained(timeoutMs = 120_000, pollMs = 50) {
        const t0 = performance.now();
        for (;;) {
          // Drained: nothing due or running. Delayed jobs that wait for their time (each app lock's watchdog,
          // due a lease after the run) do not count.
          const page = await rt.deps.store.query<QueueJobItem>({
            index: "gsi1",
            pk: queueJobKeys.ready("deploy"),
            limit: 1000,
          });
          const now = Date.now();
          if (page.items.every((j) => j.visibleAt > now && !j.leasedBy)) return performance.now() - t0;
          if (performance.now() - t0 > timeoutMs) throw new Error(`deploy queue not drained after ${timeoutMs} ms`);
          await sleep(pollMs);
        }
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

// ───────────────────────────── the suite ─────────────────────────────

/** HOIST_GITHUB_WEBHOOK_SECRET of the bench runtimes: apps are bound by name under it (the bench user, the first, is an admin). */
export const WEBHOOK_SECRET = "bench";
const PUSH_WARMUP = 20;
const PUSH_ROUNDS = [
  { requests: 300, concurrency: 1 },
  { requests: 500, concurrency: 8 },
];
const REDELIVERIES = 20;
/** Pushes sent one at a time with the deploy queue drained before each: the handler without the worker running alongside. */
const IDLE_PUSHES = 50;
const START_WARMUP = 2;
const START_RUNS = 30;

const examples = createRequire(import.meta.url)("@octokit/webhooks-examples") as { name: string; examples: Json[] }[];

/** A branch push from the examples package: GitHub's own payload shape, with our repo, branch and sha. */
export function pushTemplate(): Json & { repository: Json } {
  const push = (examples.find((e) => e.name === "push")?.examples ?? []).find(
    (p) => String(p.ref).startsWith("refs/heads/") && !p.deleted,
  );
  if (!push) throw new Error("@octokit/webhooks-examples has no branch push example");
  return push as Json & { repository: Json };
}

export interface Delivery {
  id: string;
  body: string;
  signature: string;
}

let shaCounter = 0;
/** A signed delivery of `template` for `repo`'s main branch, with a fresh sha and delivery id. */
export function delivery(template: Json & { repository: Json }, repo: string, tag: string): Delivery {
  const push = structuredClone(template);
  const sha = (shaCounter++).toString(16).padStart(8, "0") + randomBytes(16).toString("hex");
  Object.assign(push, { ref: "refs/heads/main", after: sha, deleted: false });
  push.repository.full_name = repo;
  const body = JSON.stringify(push);
  return {
    id: `${tag}-${randomBytes(6).toString("hex")}`,
    body,
    signature: `sha256=${createHmac("sha256", WEBHOOK_SECRET).update(body).digest("hex")}`,
  };
}

export interface WebhookAnswer {
  status: number;
  reply: { status?: string; deployments?: string[] };
}
export async function postDelivery(url: string, d: Delivery): Promise<WebhookAnswer> {
  const res = await fetch(`${url}/api/webhooks/github`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-github-event": "push",
      "x-github-delivery": d.id,
      "x-hub-signature-256": d.signature,
    },
    body: d.body,
  });
  const text = await res.text();
  let reply: WebhookAnswer["reply"] = {};
  try {
    reply = JSON.parse(text) as WebhookAnswer["reply"];
  } catch {}
  return { status: res.status, reply };
}

interface PushRound {
  label: string;
  requests: number;
  concurrency: number;
  ok: number;
  problems: Record<string, number>;
  elapsedMs: number;
  rps: number;
  latency: Summary;
  /** After the round: the deploy queue emptied (its deployments cancelled as superseded, or failed at connect). */
  drainMs: number;
}

/**
 * Runs `attempt(i)` for i in 0..requests-1, `concurrency` at a time (a closed loop); an attempt that
 * answers a string (or throws) counts as that problem instead of a latency.
 */
async function closedLoop(
  label: string,
  requests: number,
  concurrency: number,
  attempt: (i: number) => Promise<string | undefined>,
): Promise<Omit<PushRound, "drainMs">> {
  const latencies: number[] = [];
  const problems: Record<string, number> = {};
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < requests; i = next++) {
      const t0 = performance.now();
      let problem: string | undefined;
      try {
        problem = await attempt(i);
      } catch (err) {
        problem = err instanceof Error ? err.message : String(err);
      }
      if (problem === undefined) latencies.push(performance.now() - t0);
      else problems[problem] = (problems[problem] ?? 0) + 1;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedMs = performance.now() - t0;
  return {
    label,
    requests,
    concurrency,
    ok: latencies.length,
    problems,
    elapsedMs,
    rps: latencies.length / (elapsedMs / 1000),
    latency: summarize(latencies),
  };
}

/** Posts every delivery, `concurrency` at a time; counts answers other than 202 with `want`. */
function pushRound(
  url: string,
  label: string,
  deliveries: Delivery[],
  concurrency: number,
  want: string,
): Promise<Omit<PushRound, "drainMs">> {
  return closedLoop(label, deliveries.length, concurrency, async (i) => {
    const a = await postDelivery(url, deliveries[i] as Delivery);
    return a.status === 202 && a.reply.status === want ? undefined : `HTTP ${a.status} ${a.reply.status ?? "?"}`;
  });
}

/**
 * DynamoDB Local's rate for the very write a push makes: the transaction one push sent (captured in the
 * warm-up: claim, job, deployment, queued marker, 2 audit entries, with their index attributes), replayed with
 * fresh keys (in partitions of its own, so no queue or list sees them) — what Hoist's ingest would cost if
 * everything but its one transaction were free.
 */
function ownWriteRound(
  store: Store,
  shape: TransactOp[],
  requests: number,
  concurrency: number,
  label = "its own write, raw: the push's transaction replayed",
): Promise<Omit<PushRound, "drainMs">> {
  const run = randomBytes(4).toString("hex");
  const expiresAt = Math.floor(Date.now() / 1000) + 3600;
  const fresh = (item: Item, i: number, k: number): Item => {
    const out: Item = { ...item, pk: `BENCHTX#${run}#${i}#${k}`, expiresAt };
    for (const n of [1, 2, 3]) {
      if (typeof item[`gsi${n}pk`] === "string") out[`gsi${n}pk`] = `BENCHTX#${run}#gsi${n}#${k}`;
      if (typeof item[`gsi${n}sk`] === "string") out[`gsi${n}sk`] = `${item[`gsi${n}sk`]}#${i}`;
    }
    return out;
  };
  return closedLoop(label, requests, concurrency, async (i) => {
    await store.transact(
      shape.map((op, k) => {
        if (!("put" in op)) throw new Error("a push's transaction is puts");
        return { put: fresh(op.put, i, k), condition: cond.attrNotExists("pk") };
      }),
    );
    return undefined;
  });
}

/**
 * DynamoDB Local's own rate for the write an ingest is built around: a plain TransactWriteItems of three small
 * puts, each conditional on attribute_not_exists, through the runtime's Store (its DocumentClient, in this
 * process), `concurrency` at a time. The ingest rows divided by this say how close Hoist gets to the database.
 */
/** Items in the raw floor's transaction. */
const FLOOR_ITEMS = 3;

function floorRound(store: Store, requests: number, concurrency: number): Promise<Omit<PushRound, "drainMs">> {
  const run = randomBytes(4).toString("hex");
  const expiresAt = Math.floor(Date.now() / 1000) + 3600;
  return closedLoop(
    `raw floor: TransactWriteItems, ${FLOOR_ITEMS} conditional puts`,
    requests,
    concurrency,
    async (i) => {
      await store.transact(
        Array.from({ length: FLOOR_ITEMS }, (_, k) => ({
          put: { pk: `BENCHFLOOR#${run}#${i}#${k}`, sk: "FLOOR", entity: "bench-floor", n: i, expiresAt },
          condition: cond.attrNotExists("pk"),
        })),
      );
      return undefined;
    },
  );
}

/**
 * The least an ingest can write and still be what the issue asks for ("claim of the delivery, the deployments,
 * their jobs and the audit entry"): the push's transaction without its queued marker and its second audit entry
 * (the deployment's own `deployment.trigger`). Replayed raw, it is the ceiling of any such ingest here.
 */
function minimumOf(shape: TransactOp[]): TransactOp[] {
  return shape.filter(
    (op) => !("put" in op) || (op.put.entity !== "queued-deployment" && op.put.action !== "deployment.trigger"),
  );
}

/**
 * DynamoDB Local's cost of a transaction as `perTransaction + perItem × items`, fitted (least squares) to the mean
 * time of the raw rows at one concurrency: the floor, the issue's minimum and the push's own write.
 * `maxItems`: the largest write still ≥ 80 % of the floor's rate at that cost, with nothing else in the request.
 */
function itemCost(
  points: { items: number; ms: number }[],
): { perTransaction: number; perItem: number; maxItems: number } | undefined {
  const n = points.length;
  const mx = points.reduce((a, p) => a + p.items, 0) / n;
  const my = points.reduce((a, p) => a + p.ms, 0) / n;
  const sxx = points.reduce((a, p) => a + (p.items - mx) ** 2, 0);
  if (n < 2 || sxx === 0) return undefined;
  const perItem = points.reduce((a, p) => a + (p.items - mx) * (p.ms - my), 0) / sxx;
  const perTransaction = my - perItem * mx;
  const floorMs = perTransaction + FLOOR_ITEMS * perItem;
  return { perTransaction, perItem, maxItems: Math.floor((floorMs / 0.8 - perTransaction) / perItem) };
}

interface StartRun {
  /** POST sent → 202 received. */
  answer: number;
  /** POST sent → the worker set the deployment running (startedAt, ms resolution). */
  running: number;
  /** POST sent → the worker's SSH exec began. */
  exec: number;
  /** SSH exec began → the command's first statement ran (connect, kex, auth, .env, sh). */
  execToCommand: number;
  /** POST sent → the command's first statement ran on the target. */
  total: number;
}

export const deploys: Suite = {
  name: "deploys",
  description: "signed push → 202, push → deploy command start over loopback SSH, deploy log throughput (20k lines)",
  async run(ctx) {
    const load = loadavg()[0] ?? Number.NaN;
    let bench: Bench | undefined;
    const rounds: PushRound[] = [];
    const floors: Omit<PushRound, "drainMs">[] = [];
    const ownWrites: Omit<PushRound, "drainMs">[] = [];
    const minimumWrites: Omit<PushRound, "drainMs">[] = [];
    const alone: { push: Omit<PushRound, "drainMs">; floor: Omit<PushRound, "drainMs"> }[] = [];
    let pushWrite: TransactOp[] | undefined;
    let dup: Omit<PushRound, "drainMs"> | undefined;
    let idle: Summary | undefined;
    const starts: StartRun[] = [];
    let clock = { offsetMs: Number.NaN, boundMs: Number.NaN };
    const startProblems: string[] = [];
    try {
      ctx.log("starting the embedded runtime (DynamoDB Local) and a loopback SSH server…");
      bench = await startBench({
        HOIST_GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET,
        HOIST_DEPLOY_LOG_MAX_LINES: "50000",
      });
      const b = bench;
      const deps = b.runtime.deps;
      calibrateClock();
      clock = clockOffset();

      // Timing only: when each SSH exec begins (the worker reads deps.executor at call time).
      const inner: Executor = deps.executor;
      const execs: { begin: number; port: number }[] = [];
      deps.executor = {
        exec(target, script, opts) {
          execs.push({ begin: wallMs(), port: target.port });
          return inner.exec(target, script, opts);
        },
      };

      // ───────── (a) signed push → 202 ─────────
      const closedPort = await freePort(); // nothing listens there: each deploy fails at connect, no SSH
      const nowhere = (
        await b.call<{ id: string }>("POST", "/api/servers", {
          name: "nowhere",
          address: "127.0.0.1",
          sshPort: closedPort,
          sshUser: "deploy",
          privateKey: b.ssh.clientKey.private,
        })
      ).id;
      const repoA = "bench/push-latency";
      await b.makeApp("push-latency", "true", { repo: repoA, serverId: nowhere });
      const template = pushTemplate();
      ctx.log(`push warm-up (${PUSH_WARMUP})…`);
      const warm = Array.from({ length: PUSH_WARMUP }, (_, i) => delivery(template, repoA, `warm${i}`));
      await pushRound(b.url, "warm-up", warm, 2, "accepted");
      await b.drained();
      // The transaction one push writes (timing only: the store's method wrapped for one delivery).
      const transact = deps.store.transact;
      deps.store.transact = async (ops) => {
        if (ops.some((op) => "put" in op && op.put.entity === "github-delivery")) pushWrite = ops;
        return transact(ops);
      };
      await postDelivery(b.url, delivery(template, repoA, "shape"));
      deps.store.transact = transact;
      await b.drained();
      const sent: Delivery[] = [];
      for (const { requests, concurrency } of PUSH_ROUNDS) {
        const ds = Array.from({ length: requests }, (_, i) => delivery(template, repoA, `c${concurrency}-${i}`));
        ctx.log(`${requests} signed pushes at concurrency ${concurrency}…`);
        const r = await pushRound(b.url, "push → 202 accepted", ds, concurrency, "accepted");
        ctx.log(`  ${r.rps.toFixed(0)} req/s, p50 ${ms(r.latency.p50)} ms; waiting for the deploy queue to drain…`);
        const drainMs = await b.drained();
        rounds.push({ ...r, drainMs });
        sent.push(...ds);
        ctx.log(
          `  raw floor: ${requests} TransactWriteItems (${FLOOR_ITEMS} conditional puts) at concurrency ${concurrency}…`,
        );
        if (floors.length === 0) await floorRound(deps.store, PUSH_WARMUP, 2);
        const f = await floorRound(deps.store, requests, concurrency);
        ctx.log(`  ${f.rps.toFixed(0)} req/s, p50 ${ms(f.latency.p50)} ms`);
        floors.push(f);
        if (pushWrite) {
          ctx.log(`  the push's own ${pushWrite.length}-item transaction, raw, at concurrency ${concurrency}…`);
          ownWrites.push(await ownWriteRound(deps.store, pushWrite, requests, concurrency));
          const minimum = minimumOf(pushWrite);
          ctx.log(`  the least such an ingest writes (${minimum.length} items), raw, at concurrency ${concurrency}…`);
          minimumWrites.push(
            await ownWriteRound(deps.store, minimum, requests, concurrency, "the issue's minimum write, raw"),
          );
        }
      }
      ctx.log(`${IDLE_PUSHES} pushes one at a time, each once the deploy queue is empty…`);
      const idleLatencies: number[] = [];
      for (let i = 0; i < IDLE_PUSHES; i++) {
        await b.drained(30_000, 5);
        const d = delivery(template, repoA, `idle${i}`);
        const t0 = performance.now();
        const a = await postDelivery(b.url, d);
        if (a.status === 202 && a.reply.status === "accepted") idleLatencies.push(performance.now() - t0);
      }
      idle = summarize(idleLatencies);
      await b.drained();
      ctx.log(`${REDELIVERIES} redeliveries (duplicates)…`);
      const again = Array.from({ length: REDELIVERIES }, (_, i) => sent[(i * 37) % sent.length] as Delivery);
      dup = await pushRound(b.url, "redelivery → 202 duplicate", again, 1, "duplicate");

      // ───────── (b) push → deploy command started ─────────
      const repoB = "bench/deploy-start";
      const started = await b.makeApp("deploy-start", "date +%s%N > started.txt", { repo: repoB });
      const startedFile = join(started.dir, "started.txt");
      ctx.log(`push → command start: ${START_WARMUP} warm-up + ${START_RUNS} sequential pushes…`);
      for (let i = 0; i < START_WARMUP + START_RUNS; i++) {
        await rm(startedFile, { force: true });
        const d = delivery(template, repoB, `start${i}`);
        const sentAt = wallMs();
        const a = await postDelivery(b.url, d);
        const answeredAt = wallMs();
        const id = a.reply.deployments?.[0];
        if (a.status !== 202 || a.reply.status !== "accepted" || !id) {
          startProblems.push(`push ${i}: HTTP ${a.status} ${JSON.stringify(a.reply)}`);
          continue;
        }
        const dep = await b.finished(id, 30_000, 5);
        // The app idle again (its run's tail done: lock released, the wake-up for what is next run), so the next
        // push times its own path, not a wait for this run's release.
        await b.drained(30_000, 5);
        if (dep.status !== "succeeded") {
          startProblems.push(`deployment ${id}: ${dep.status} ${dep.error ?? ""}`);
          continue;
        }
        if (i < START_WARMUP) continue;
        const commandAt = nsToMs(await readFile(startedFile, "utf8"));
        const exec = execs.find((e) => e.port === b.ssh.port && e.begin >= sentAt);
        starts.push({
          answer: answeredAt - sentAt,
          running: (dep.startedAt ?? Number.NaN) - sentAt,
          exec: (exec?.begin ?? Number.NaN) - sentAt,
          execToCommand: commandAt - (exec?.begin ?? Number.NaN),
          total: commandAt - sentAt,
        });
      }

      // ───────── (a, last) the ingest alone: the deploy queue's consumer stopped, as on AWS where the worker is
      // another Lambda; the jobs stay queued (the runtime is thrown away after). ─────────
      ctx.log("stopping the deploy queue's consumer, then pushes with nothing else running…");
      await (deps.queue as TableQueue).stop();
      for (const { requests, concurrency } of PUSH_ROUNDS) {
        const ds = Array.from({ length: requests }, (_, i) => delivery(template, repoA, `alone${concurrency}-${i}`));
        const push = await pushRound(b.url, "push → 202, deploy worker stopped", ds, concurrency, "accepted");
        const floor = await floorRound(deps.store, requests, concurrency);
        ctx.log(
          `  c=${concurrency}: ${push.rps.toFixed(0)} req/s; raw floor right after ${floor.rps.toFixed(0)} req/s`,
        );
        alone.push({ push, floor });
      }
    } finally {
      ctx.log("stopping the SSH server and the runtime…");
      await bench?.stop();
    }

    // ───────── tables ─────────
    const lat = (label: string, r: Omit<PushRound, "drainMs">) => [label, ...driveCells(r)];
    const problems = [
      ...rounds,
      ...floors,
      ...ownWrites,
      ...minimumWrites,
      ...alone.flatMap((a) => [a.push, a.floor]),
      ...(dup ? [dup] : []),
    ].flatMap((r) => Object.entries(r.problems).map(([k, n]) => `! ${r.label} c=${r.concurrency}: ${n}× ${k}`));
    const share = (label: string, concurrency: number, pct: number) => [
      label,
      concurrency,
      "–",
      `${pct.toFixed(0)} %`,
      "–",
      "–",
      "–",
      "–",
    ];
    const costs = floors.flatMap((f) => {
      const own = ownWrites.find((x) => x.concurrency === f.concurrency);
      const least = minimumWrites.find((x) => x.concurrency === f.concurrency);
      if (!own || !least || !pushWrite) return [];
      const fit = itemCost([
        { items: FLOOR_ITEMS, ms: 1000 / f.rps },
        { items: minimumOf(pushWrite).length, ms: 1000 / least.rps },
        { items: pushWrite.length, ms: 1000 / own.rps },
      ]);
      return fit ? [{ concurrency: f.concurrency, fit }] : [];
    });
    // Worker idle: one push at a time, so its rate is 1 / its mean latency; beside the c=1 floor's.
    const floor1 = floors.find((f) => f.concurrency === 1);
    const idlePct = idle && floor1 ? (100 * (1000 / idle.mean)) / floor1.rps : undefined;
    const pushTable: Table = {
      title: `deploys (a) — POST /api/webhooks/github, signed push (octokit example payload, ~${kbOf(pushTemplate())} KiB), after ${PUSH_WARMUP} warm-up`,
      columns: ["request", "conc", "ok", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"],
      rows: [
        ...rounds.flatMap((r) => {
          const f = floors.find((x) => x.concurrency === r.concurrency);
          const own = ownWrites.find((x) => x.concurrency === r.concurrency);
          const least = minimumWrites.find((x) => x.concurrency === r.concurrency);
          return [
            lat(r.label, r),
            ...(f
              ? [lat(f.label, f), share("  push ÷ raw floor (goal ≥ 80 %)", r.concurrency, (100 * r.rps) / f.rps)]
              : []),
            ...(own
              ? [lat(own.label, own), share("  push ÷ its own write", r.concurrency, (100 * r.rps) / own.rps)]
              : []),
            ...(least && f
              ? [
                  lat(least.label, least),
                  share("  minimum write ÷ raw floor: the ceiling", r.concurrency, (100 * least.rps) / f.rps),
                ]
              : []),
          ];
        }),
        ...(idle
          ? [
              [
                "push → 202, worker idle (queue empty)",
                1,
                `${idle.n}/${IDLE_PUSHES}`,
                (1000 / idle.mean).toFixed(0),
                ms(idle.p50),
                ms(idle.p95),
                ms(idle.p99),
                ms(idle.max),
              ],
              ...(idlePct !== undefined ? [share("  worker idle ÷ raw floor (goal ≥ 80 %)", 1, idlePct)] : []),
            ]
          : []),
        ...(dup ? [lat(dup.label, dup)] : []),
        ...alone.flatMap(({ push, floor }) => [
          lat(push.label, push),
          lat(floor.label, floor),
          share("  push, worker stopped ÷ raw floor (goal ≥ 80 %)", push.concurrency, (100 * push.rps) / floor.rps),
        ]),
      ],
      notes: [
        "Each accepted push, embedded: one DynamoDB round trip, its TransactWriteItems (claim, the job on the table-backed queue,",
        "deployment, queued marker, 2 audit entries); the repository's secret and the gsi3 queries for repo#branch are remembered by the",
        "embedded store until a binding changes (adapters/local/binding-cache.ts), the failure count is read only for a bad signature.",
        "(On AWS: a GetItem for the secret, the queries, the transaction, then the SQS send.)",
        "A duplicate: the transaction's claim condition fails, then one consistent GetItem of the claim.",
        "Deploy worker stopped (run last): the deploy queue's consumer stopped, so the push does its HTTP, signature, parse and transaction",
        "with nothing else running in the process, as on AWS where the worker is another Lambda; its floor is measured right after it.",
        `Raw floor: DynamoDB Local's rate for TransactWriteItems of ${FLOOR_ITEMS} small puts (attribute_not_exists), through the runtime's Store in this`,
        "process, run right after each push row once the deploy queue drained (no worker running); the push rows run the worker alongside.",
        `Its own write: the ${pushWrite?.length ?? "?"}-item transaction one push sent, replayed raw with fresh keys: the push's floor, since`,
        "DynamoDB Local's cost grows with the items written, fitted to the three raw rows (1000 / req/s):",
        ...costs.map(
          ({ concurrency, fit }) =>
            `  c=${concurrency}: ${fit.perTransaction.toFixed(2)} ms per transaction + ${fit.perItem.toFixed(2)} ms per item; a write reaches 80 % of the floor's rate with at most ${fit.maxItems} items, and no HTTP, signature or parse.`,
        ),
        `The issue's minimum write: that transaction without the queued marker and the deployment's own audit entry (${pushWrite ? minimumOf(pushWrite).length : "?"} items: the claim,`,
        "the deployment, its job, the webhook's audit entry), replayed the same way: no ingest writing what the issue lists can go faster here.",
        "The app's server points at a closed port: the worker's deploys fail at TCP connect (no SSH), but it still runs in this process during the timing",
        `(~20 DynamoDB calls per deployment: lock, running, announce, supersede, app/server/env reads, log, finish, usage, audit, wake-next).`,
        `The queue was empty again ${rounds.map((r) => `${(r.drainMs / 1000).toFixed(1)} s`).join(" and ")} after the last answer of each row. "worker idle": each push sent once the previous one's job was done.`,
        `Client, server, worker and DynamoDB Local (java) share this machine's cores; 1-min load average at the start: ${load.toFixed(2)} on ${cpus().length} cores.`,
        ...problems,
      ],
    };
    const s = (f: (r: StartRun) => number) => summarize(starts.map(f));
    const row = (label: string, f: (r: StartRun) => number) => {
      const x = s(f);
      return [label, ms(x.p50), ms(x.p95), ms(x.p99), ms(x.min), ms(x.max)];
    };
    const startTable: Table = {
      title: `deploys (b) — signed push POST sent → deploy command started on the target (${starts.length} sequential pushes after ${START_WARMUP} warm-up)`,
      columns: ["phase", "p50 ms", "p95 ms", "p99 ms", "min ms", "max ms", "goal p50"],
      rows: [
        [...row("POST sent → 202 answered", (r) => r.answer), ""],
        [...row("POST sent → deployment running", (r) => r.running), ""],
        [...row("POST sent → SSH exec begins (Hoist's part)", (r) => r.exec), "≤ 50"],
        [...row("SSH exec begins → command runs (the command's own start)", (r) => r.execToCommand), ""],
        [...row("POST sent → command runs (total)", (r) => r.total), ""],
      ],
      notes: [
        "Command: `date +%s%N > started.txt` in cdPath; each push waits for the previous deployment to finish (GET every 5 ms) and the",
        "deploy queue to be empty (the previous run's lock released; a push landing while it is held waits for that run's wake-up).",
        "running = the deployment's startedAt (ms resolution); SSH exec = a channel on the server's warm connection (the handshake is paid once,",
        "by the warm-up), .env written from stdin, /bin/sh.",
        `Clocks: bench − \`date +%s%N\` = ${clock.offsetMs.toFixed(3)} ms (± ${clock.boundMs.toFixed(3)} ms, one fork of date).`,
        ...startProblems.map((p) => `! ${p}`),
      ],
    };
    return {
      tables: [pushTable, startTable],
      data: {
        loadAverage: load,
        push: rounds,
        floor: floors,
        ownWrite: ownWrites,
        minimumWrite: minimumWrites,
        itemCost: costs,
        idle,
        redelivery: dup,
        start: { runs: starts, clock },
      },
    };
  },
};

function kbOf(payload: Json): string {
  return (Buffer.byteLength(JSON.stringify(payload)) / 1024).toFixed(1);
}
