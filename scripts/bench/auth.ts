/**
 * What authentication costs: one scrypt hash and verify (and how the libuv
 * pool spreads concurrent ones), POST /api/auth/login over HTTP, and what
 * requireUser does per request (GET /api/auth/verify, with the DynamoDB calls
 * it awaits counted; its steps in process, against jose's signature check
 * alone).
 *
 * The runtime is the embedded one (startRuntime: DynamoDB Local, the Hono app
 * on Node) started in this process, driven over real HTTP with keep-alive; the
 * client and the server share this process's event loop and libuv pool.
 */
import { availableParallelism } from "node:os";
import { hashPassword, SCRYPT, verifyPassword } from "@hoist/core/auth/password";
import { AUDIENCE, authenticate } from "@hoist/core/auth/tokens";
import { loadConfig } from "@hoist/core/config";
import { countInWindow } from "@hoist/core/http/middleware/rate-limit";
import type { Store } from "@hoist/core/store/store";
import { UNLIMITED_PLANS_FILE } from "@hoist/core/testing/plans";
import { monthOf, usageKey } from "@hoist/core/usage/entity";
import { getUsage } from "@hoist/core/usage/service";
import { type Runtime, startRuntime } from "@hoist/local/runtime";
import { decodeProtectedHeader, jwtVerify } from "jose";
import {
  type DriveResult,
  drive,
  driveCells,
  ms,
  removeDir,
  type Suite,
  type Summary,
  summarize,
  tempDir,
} from "./lib.ts";

// ───────────────────── shared with the apps suite ─────────────────────

export interface Embedded {
  runtime: Runtime;
  url: string;
  /** Stops the runtime (DynamoDB Local included) and removes its data directory. */
  stop(): Promise<void>;
}

/**
 * The embedded runtime in this process, on a fresh temp data dir, a free port,
 * silent logs, no rate limits, plans without limits (the plans suite measures
 * those) and no periodic status sweep. Only the variables
 * given here (plus `env`) are read, never the caller's HOIST_* environment.
 */
export async function startEmbedded(env: Record<string, string> = {}): Promise<Embedded> {
  // As main.ts: the SDK's notice about its future Node requirement is noise here.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  const dataDir = await tempDir("embedded");
  try {
    const config = loadConfig({
      HOIST_DATA_DIR: dataDir,
      PORT: "0",
      HOIST_LOG_LEVEL: "silent",
      HOIST_RATE_LIMIT_AUTH: "0",
      HOIST_RATE_LIMIT_API: "0",
      HOIST_STATUS_SWEEP_SECONDS: "0",
      HOIST_PLANS_FILE: UNLIMITED_PLANS_FILE,
      ...env,
    });
    const runtime = await startRuntime(config);
    let stopped: Promise<void> | undefined;
    const stop = () => {
      stopped ??= runtime.stop().finally(() => removeDir(dataDir));
      return stopped;
    };
    return { runtime, url: runtime.url, stop };
  } catch (err) {
    await removeDir(dataDir);
    throw err;
  }
}

export const PASSWORD = "correct horse battery staple";

/** JSON over HTTP; throws on an unexpected status. */
export async function api<T = Record<string, unknown>>(
  base: string,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; expect?: number } = {},
): Promise<T> {
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  const text = await res.text();
  const expect = opts.expect ?? (method === "POST" ? 201 : 200);
  if (res.status !== expect) throw new Error(`${method} ${path}: HTTP ${res.status} (expected ${expect}): ${text}`);
  return (text ? JSON.parse(text) : {}) as T;
}

export async function registerUser(base: string, username: string): Promise<{ token: string; userId: string }> {
  const body = await api<{ token: string; user: { id: string } }>(base, "POST", "/api/auth/register", {
    body: { username, email: `${username}@example.com`, password: PASSWORD },
  });
  return { token: body.token, userId: body.user.id };
}

/** `n` runs of `fn`, `concurrency` at a time; latency of each (ms) and the wall time. */
export async function timed(
  n: number,
  concurrency: number,
  fn: () => Promise<unknown>,
): Promise<{ latencies: number[]; elapsedMs: number }> {
  const latencies: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      const t0 = performance.now();
      await fn();
      latencies.push(performance.now() - t0);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  return { latencies, elapsedMs: performance.now() - t0 };
}

// ───────────────────────────── the suite ─────────────────────────────

const HASH_RUNS = 20;
const POOL_CONCURRENCY = [2, 4, 8];
/** Hashes per pool row: each in-flight slot runs at least twice (and each of the 4 pool threads, twice). */
const poolHashes = (concurrency: number) => Math.max(8, 2 * concurrency);
const LOGINS = 200;
const LOGIN_WARMUP = 4;
const LOGIN_CONCURRENCY = [1, 8];
const VERIFY_REQUESTS = 2000;
const VERIFY_WARMUP = 100;
const VERIFY_CONCURRENCY = [1, 16];
const IN_PROCESS_CALLS = 2000;
/** Calls of the steps that write (the rate window, a usage flush): fewer suffice. */
const WRITE_CALLS = 500;
/** Requests per minute for the rows with the API limits on: both windows are counted, none refuses. */
const UNREACHED_LIMIT = 1_000_000;

const us = (msValue: number) => (msValue * 1000).toFixed(0);
const rate = (n: number, elapsedMs: number) => (n / (elapsedMs / 1000)).toFixed(0);
const rate1 = (n: number, elapsedMs: number) => (n / (elapsedMs / 1000)).toFixed(1);

/** Runs `fn` and says how many cores this process kept busy meanwhile (its CPU time ÷ wall time). */
export async function withCpu<T>(fn: () => Promise<T>): Promise<{ result: T; cores: number }> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const result = await fn();
  const cpu = process.cpuUsage(cpu0);
  return { result, cores: (cpu.user + cpu.system) / 1000 / (performance.now() - t0) };
}

/** The Store calls of the runtime while a row runs, by what asks: requireUser's path, the usage meter, the rest. */
interface StoreCalls {
  /** Awaited by the request: BatchGetItem (blocklist + user), rate-window UpdateItems, any GetItem. */
  requestPath: number;
  /** The usage meter's UpdateItems (in the background, one per user and month per flush). */
  usageWrites: number;
  /** Queries: the queue's polls and the request log's once-a-second listener check. */
  queries: number;
}

function countStoreCalls(store: Store, usagePk: string): { calls: StoreCalls; restore(): void } {
  const calls: StoreCalls = { requestPath: 0, usageWrites: 0, queries: 0 };
  const target = store as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const methods = ["get", "batchGet", "put", "update", "delete", "query", "batchPut", "transact"];
  const originals = methods.map((m) => [m, target[m]] as const);
  for (const [m, original] of originals) {
    if (!original) continue;
    target[m] = (...args: unknown[]) => {
      if (m === "query") calls.queries++;
      else if (m === "update" && (args[0] as { pk: string }).pk === usagePk) calls.usageWrites++;
      else calls.requestPath++;
      return original.apply(store, args);
    };
  }
  return {
    calls,
    restore() {
      for (const [m, original] of originals) target[m] = original as (...args: unknown[]) => Promise<unknown>;
    },
  };
}

function problemsOf(label: string, r: DriveResult): string[] {
  return [
    ...Object.entries(r.unexpected).map(([status, n]) => `! ${label} c=${r.concurrency}: ${n}× HTTP ${status}`),
    ...Object.entries(r.errors).map(([message, n]) => `! ${label} c=${r.concurrency}: ${n}× ${message}`),
  ];
}

export const auth: Suite = {
  name: "auth",
  description: "scrypt hash/verify cost, POST /api/auth/login and token verification (HTTP and in-process)",
  async run(ctx) {
    const threadpool = process.env.UV_THREADPOOL_SIZE ?? "4 (default)";

    // (a) scrypt, before the runtime exists: nothing else on the pool or the cores.
    ctx.log(`scrypt: ${HASH_RUNS} sequential hashes and verifies…`);
    await hashPassword(PASSWORD); // warm-up
    const stored = await hashPassword(PASSWORD);
    const { result: hash, cores: hashCores } = await withCpu(() => timed(HASH_RUNS, 1, () => hashPassword(PASSWORD)));
    const verify = await timed(HASH_RUNS, 1, async () => {
      if (!(await verifyPassword(PASSWORD, stored))) throw new Error("verifyPassword said no to the right password");
    });
    const pool: { concurrency: number; n: number; elapsedMs: number; latency: Summary; cores: number }[] = [];
    for (const concurrency of POOL_CONCURRENCY) {
      const n = poolHashes(concurrency);
      ctx.log(`scrypt: ${n} hashes, ${concurrency} at a time…`);
      const { result: r, cores } = await withCpu(() => timed(n, concurrency, () => hashPassword(PASSWORD)));
      pool.push({ concurrency, n, elapsedMs: r.elapsedMs, latency: summarize(r.latencies), cores });
    }
    const hashSum = summarize(hash.latencies);
    const verifySum = summarize(verify.latencies);

    let embedded: Embedded | undefined;
    const logins: DriveResult[] = [];
    const verifies: (DriveResult & { limits: boolean; calls: StoreCalls })[] = [];
    const loginCores: number[] = [];
    let inProcess: { label: string; n: number; elapsedMs: number; latency: Summary }[] = [];
    let usageCheck: { counted: number; sent: number } | undefined;
    try {
      ctx.log("starting the embedded runtime…");
      const t0 = performance.now();
      embedded = await startEmbedded();
      ctx.log(`runtime ready in ${ms(performance.now() - t0)} ms`);
      const base = embedded.url;
      const deps = embedded.runtime.deps;
      const { token, userId } = await registerUser(base, "bench");

      // (b) logins
      const loginInit: RequestInit = {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username: "bench", password: PASSWORD }),
      };
      const loginUrl = `${base}/api/auth/login`;
      ctx.log(`login warm-up (${LOGIN_WARMUP})…`);
      await drive({ url: loginUrl, requests: LOGIN_WARMUP, concurrency: 2, init: loginInit });
      for (const concurrency of LOGIN_CONCURRENCY) {
        ctx.log(`login: ${LOGINS} requests at concurrency ${concurrency}…`);
        const { result, cores } = await withCpu(() =>
          drive({ url: loginUrl, requests: LOGINS, concurrency, init: loginInit }),
        );
        logins.push(result);
        loginCores.push(cores);
      }

      // (c) token verification over HTTP
      const verifyUrl = `${base}/api/auth/verify`;
      const verifyInit: RequestInit = { headers: { authorization: `Bearer ${token}` } };
      ctx.log(`verify warm-up (${VERIFY_WARMUP})…`);
      const usageBefore = (await getUsage(deps, userId, monthOf(Date.now()))).requests;
      await drive({ url: verifyUrl, requests: VERIFY_WARMUP, concurrency: 4, init: verifyInit });
      const apiLimit = deps.config.rateLimit.api;
      for (const limits of [false, true]) {
        // The same runtime with HOIST_RATE_LIMIT_API at a limit never reached: the per-IP (app.ts) and
        // per-user (requireUser) windows are counted on every request, as with the default of 100.
        deps.config.rateLimit.api = limits ? UNREACHED_LIMIT : 0;
        for (const concurrency of VERIFY_CONCURRENCY) {
          ctx.log(
            `GET /api/auth/verify: ${VERIFY_REQUESTS} requests at concurrency ${concurrency}, API limits ${limits ? "on" : "off"}…`,
          );
          const counting = countStoreCalls(deps.store, usageKey(userId, monthOf(Date.now())).pk);
          try {
            const r = await drive({ url: verifyUrl, requests: VERIFY_REQUESTS, concurrency, init: verifyInit });
            verifies.push({ ...r, limits, calls: { ...counting.calls } });
          } finally {
            counting.restore();
          }
        }
      }
      deps.config.rateLimit.api = apiLimit;
      // Every authenticated request counted, once the meter has written: GET /api/usage's own check.
      usageCheck = {
        counted: (await getUsage(deps, userId, monthOf(Date.now()))).requests - usageBefore,
        sent: VERIFY_WARMUP + verifies.reduce((n, r) => n + r.requests, 0),
      };

      // (c) in process: the whole check, and jose's signature check alone (same key, same options)
      const { kid } = decodeProtectedHeader(token);
      const key = kid ? deps.jwtKeys.verifying.get(kid) : undefined;
      if (!key) throw new Error("the token's kid is not in the runtime's key set");
      const joseOnly = () =>
        jwtVerify(token, key, {
          algorithms: ["EdDSA"],
          issuer: deps.config.auth.issuer,
          audience: AUDIENCE,
          typ: "at+jwt",
          clockTolerance: 30,
          requiredClaims: ["sub", "jti", "exp"],
        });
      const full = () => authenticate(deps, token);
      for (let i = 0; i < 200; i++) await Promise.all([joseOnly(), full()]); // warm-up
      ctx.log(`in-process: ${IN_PROCESS_CALLS} × jwtVerify, ${IN_PROCESS_CALLS} × authenticate, the rest…`);
      // Another user's counters, so the bench user's usage stays the requests sent.
      const meterUser = "usr_bench_in_process";
      inProcess = [];
      for (const [label, n, fn] of [
        ["jwtVerify (EdDSA signature + claims)", IN_PROCESS_CALLS, joseOnly],
        ["1. authenticate (+ BatchGetItem blocklist & user)", IN_PROCESS_CALLS, full],
        ["2. per-user rate window (UpdateItem ADD)", WRITE_CALLS, () => countInWindow(deps.store, "bench", meterUser)],
        ["usage.count (in memory; not awaited I/O)", IN_PROCESS_CALLS, async () => deps.usage.count(meterUser)],
        [
          "usage.flush (background: UpdateItem ADD n)",
          WRITE_CALLS,
          async () => {
            deps.usage.count(meterUser);
            await deps.usage.flush(meterUser);
          },
        ],
      ] as const) {
        const r = await timed(n, 1, fn);
        inProcess.push({ label, n, elapsedMs: r.elapsedMs, latency: summarize(r.latencies) });
      }
    } finally {
      ctx.log("stopping the runtime…");
      await embedded?.stop();
    }

    const problems = [
      ...logins.flatMap((r) => problemsOf("login", r)),
      ...verifies.flatMap((r) => problemsOf("verify", r)),
      ...(usageCheck && usageCheck.counted !== usageCheck.sent
        ? [`! GET /api/usage counted ${usageCheck.counted} of the ${usageCheck.sent} verify requests sent`]
        : []),
    ];
    const loginP50 = logins[0]?.latency.p50 ?? Number.NaN;
    const joseP50 = inProcess[0]?.latency.p50 ?? Number.NaN;
    const fullP50 = inProcess[1]?.latency.p50 ?? Number.NaN;
    return {
      tables: [
        {
          title: `auth — scrypt (N=2^${Math.log2(SCRYPT.N)}=${SCRYPT.N}, r=${SCRYPT.r}, p=${SCRYPT.p}, keyLength=${SCRYPT.keyLength}; ${(128 * SCRYPT.N * SCRYPT.r) / 2 ** 20} MiB per hash), ${HASH_RUNS} sequential runs`,
          columns: ["operation", "runs", "p50 ms", "p99 ms", "min ms", "max ms"],
          rows: [
            ["hashPassword", hashSum.n, ms(hashSum.p50), ms(hashSum.p99), ms(hashSum.min), ms(hashSum.max)],
            ["verifyPassword", verifySum.n, ms(verifySum.p50), ms(verifySum.p99), ms(verifySum.min), ms(verifySum.max)],
          ],
        },
        {
          title: "auth — concurrent hashPassword (libuv pool)",
          columns: ["in flight", "hashes", "hashes/s", "p50 ms", "p99 ms", "vs sequential", "node CPU (cores)"],
          rows: [
            [
              1,
              hashSum.n,
              rate1(hashSum.n, hash.elapsedMs),
              ms(hashSum.p50),
              ms(hashSum.p99),
              "1.00×",
              hashCores.toFixed(2),
            ],
            ...pool.map((p) => [
              p.concurrency,
              p.n,
              rate1(p.n, p.elapsedMs),
              ms(p.latency.p50),
              ms(p.latency.p99),
              `${(p.n / p.elapsedMs / (hashSum.n / hash.elapsedMs)).toFixed(2)}×`,
              p.cores.toFixed(2),
            ]),
          ],
          notes: [
            `UV_THREADPOOL_SIZE ${threadpool}; ${availableParallelism()} CPUs. Each hash is one pool task (p=${SCRYPT.p} lanes run one after another inside it).`,
            "node CPU (cores): this process's CPU time ÷ wall time over the row; ≈1.0 with ≥2 hashes in flight means only one core's worth of CPU was to be had.",
          ],
        },
        {
          title: `auth — POST /api/auth/login over HTTP (one user, ${LOGINS} requests per row after ${LOGIN_WARMUP} warm-up)`,
          columns: ["conc", "ok", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "node CPU (cores)"],
          rows: logins.map((r, i) => [...driveCells(r, 1), loginCores[i]?.toFixed(2) ?? "–"]),
          notes: [
            `scrypt verify alone (above) p50 ${ms(verifySum.p50)} ms of a ${ms(loginP50)} ms login at c=1; the rest: 2 GetItem (guard, user), lockout GetItem + DeleteItem, audit PutItem, token TransactWriteItems, EdDSA sign.`,
          ],
        },
        {
          title: `auth — GET /api/auth/verify with a valid token, ${VERIFY_REQUESTS} requests per row after ${VERIFY_WARMUP} warm-up`,
          columns: [
            "API limits",
            "conc",
            "ok",
            "req/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "DynamoDB calls/req",
            "usage writes",
          ],
          rows: verifies.map((r) => [
            r.limits ? "on" : "off",
            ...driveCells(r),
            (r.calls.requestPath / r.requests).toFixed(2),
            r.calls.usageWrites,
          ]),
          notes: [
            "Per request: EdDSA verify, then 1 BatchGetItem (blocklist + user) started alongside app.ts's per-IP window UpdateItem, then (requireUser) the per-user",
            "window UpdateItem: with the API limits on, 3 calls but 2 awaited one after the other (goal ≤ 2; auth/round-trips.test.ts counts them); off, 1.",
            `API limits on: HOIST_RATE_LIMIT_API=${UNREACHED_LIMIT} (never reached). DynamoDB calls/req: the runtime's Store calls during the row other than queries (queue polls, the request log's once-a-second listener check) and the usage meter's writes, ÷ requests.`,
            "usage writes: the meter's UpdateItems during the row (one per user and month per flush, every second embedded; after each event on Lambda), not awaited by any request.",
            ...(usageCheck
              ? [`GET /api/usage afterwards: ${usageCheck.counted} requests counted of ${usageCheck.sent} sent.`]
              : []),
            ...problems,
          ],
        },
        {
          title: "auth — what requireUser does, in process, sequential calls (the first two after 200 warm-up)",
          columns: ["call", "calls", "calls/s", "mean µs", "p50 µs", "p95 µs", "p99 µs"],
          rows: inProcess.map((r) => [
            r.label,
            r.n,
            rate(r.n, r.elapsedMs),
            us(r.latency.mean),
            us(r.latency.p50),
            us(r.latency.p95),
            us(r.latency.p99),
          ]),
          notes: [
            `1 and 2 are the round trips a request awaits (2 only with HOIST_RATE_LIMIT_API > 0); authenticate is ${Number.isFinite(fullP50 / joseP50) ? (fullP50 / joseP50).toFixed(0) : "–"}× the signature check alone at p50. The usage counter is usage.count per request and usage.flush in the background.`,
            "Client and server share this process (embedded runtime via startRuntime; DynamoDB Local is a java child).",
          ],
        },
      ],
      data: {
        scrypt: SCRYPT,
        threadpool,
        hash: { ...hashSum, nodeCpuCores: hashCores },
        verify: verifySum,
        pool: pool.map((p) => ({ ...p, hashesPerSecond: p.n / (p.elapsedMs / 1000) })),
        login: logins.map(({ latencies: _l, ...r }, i) => ({ ...r, nodeCpuCores: loginCores[i] })),
        verifyHttp: verifies.map(({ latencies: _l, ...r }) => r),
        usageCheck,
        inProcess,
      },
    };
  },
};
