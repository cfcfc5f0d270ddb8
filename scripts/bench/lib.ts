/**
 * Shared pieces of the benchmark suites: statistics, a concurrent HTTP driver,
 * a supervisor for `npm start` in its own process group, and table printing.
 * Nothing here asserts timings: suites report figures, people judge them.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../../packages/local/src/dynamodb-local.ts";

/** The repository root (scripts/bench/ → ../..). */
export const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

// ───────────────────────────── suites ─────────────────────────────

export interface Table {
  title: string;
  columns: string[];
  rows: (string | number)[][];
  /** Per-column alignment; default: first column left, the others right. */
  align?: ("l" | "r")[];
  /** Lines printed under the table. */
  notes?: string[];
}

export interface SuiteResult {
  tables: Table[];
  /** Machine-readable figures for `--json`. */
  data: Record<string, unknown>;
}

export interface SuiteContext {
  /** Progress line on stderr (figures go to stdout). */
  log(message: string): void;
}

export interface Suite {
  name: string;
  description: string;
  run(ctx: SuiteContext): Promise<SuiteResult>;
}

// ───────────────────────────── statistics ─────────────────────────────

/** Nearest-rank percentile of an ascending-sorted sample. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export interface Summary {
  n: number;
  min: number;
  mean: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export function summarize(values: readonly number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  const sum = s.reduce((a, b) => a + b, 0);
  return {
    n: s.length,
    min: s[0] ?? Number.NaN,
    mean: s.length ? sum / s.length : Number.NaN,
    p50: percentile(s, 50),
    p95: percentile(s, 95),
    p99: percentile(s, 99),
    max: s[s.length - 1] ?? Number.NaN,
  };
}

// ───────────────────────────── HTTP driver ─────────────────────────────

export interface DriveOptions {
  url: string;
  requests: number;
  concurrency: number;
  init?: RequestInit;
  /** Status counted as success (default 200). */
  expectStatus?: number;
}

export interface DriveResult {
  requests: number;
  concurrency: number;
  ok: number;
  /** Responses with another status, by status. */
  unexpected: Record<string, number>;
  /** Network errors, by message. */
  errors: Record<string, number>;
  elapsedMs: number;
  /** Successful responses per second of wall time. */
  rps: number;
  /** Latency of every successful request (ms), in completion order. */
  latencies: number[];
  latency: Summary;
}

/**
 * `requests` requests over `concurrency` workers, each awaiting its response
 * body before the next request. Node's fetch (undici) keeps connections alive,
 * so each worker reuses its connection.
 */
/** The usual cells of a driven row: concurrency, ok/requests, req/s, p50, p95, p99, max. */
export function driveCells(
  r: Pick<DriveResult, "concurrency" | "ok" | "requests" | "rps" | "latency">,
  rpsDigits = 0,
): (string | number)[] {
  return [
    r.concurrency,
    `${r.ok}/${r.requests}`,
    r.rps.toFixed(rpsDigits),
    ms(r.latency.p50),
    ms(r.latency.p95),
    ms(r.latency.p99),
    ms(r.latency.max),
  ];
}

export async function drive(opts: DriveOptions): Promise<DriveResult> {
  const expect = opts.expectStatus ?? 200;
  const latencies: number[] = [];
  const unexpected: Record<string, number> = {};
  const errors: Record<string, number> = {};
  let next = 0;
  const worker = async () => {
    while (next < opts.requests) {
      next++;
      const t0 = performance.now();
      try {
        const res = await fetch(opts.url, opts.init);
        await res.arrayBuffer();
        const ms = performance.now() - t0;
        if (res.status === expect) latencies.push(ms);
        else unexpected[res.status] = (unexpected[res.status] ?? 0) + 1;
      } catch (err) {
        const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : "";
        const key = `${err instanceof Error ? err.message : String(err)}${cause}`;
        errors[key] = (errors[key] ?? 0) + 1;
      }
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency) }, worker));
  const elapsedMs = performance.now() - started;
  return {
    requests: opts.requests,
    concurrency: opts.concurrency,
    ok: latencies.length,
    unexpected,
    errors,
    elapsedMs,
    rps: latencies.length / (elapsedMs / 1000),
    latencies,
    latency: summarize(latencies),
  };
}

// ───────────────────────────── processes ─────────────────────────────

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export { freePort };

const tempDirs = new Set<string>();
/** Set by cleanup(): nothing new is started or created after it. */
let closing = false;

function assertOpen(): void {
  if (closing) throw new Error("the bench is stopping");
}

/** A fresh directory under the system temp dir; removed by removeDir, or by cleanup() if the run is interrupted. */
export async function tempDir(prefix: string): Promise<string> {
  assertOpen();
  const dir = await mkdtemp(join(tmpdir(), `hoist-bench-${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

/** Leaves a temp dir in place at the end of the run. */
export function keepDir(dir: string): void {
  tempDirs.delete(dir);
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  tempDirs.delete(dir);
}

/** Resident set size in KiB from /proc/<pid>/status (VmRSS), or undefined if the process is gone. */
export function rssKb(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export interface ProcessInfo {
  pid: number;
  comm: string;
  args: string;
  /** VmRSS in KiB. */
  rssKb: number;
  role: string;
}

function roleOf(comm: string, args: string): string {
  if (comm === "java") return "java (DynamoDB Local)";
  if (comm.startsWith("npm")) return "npm";
  if (comm === "sh") return "sh (npm script)";
  if (comm === "esbuild") return "esbuild (tsx service)";
  if (comm === "node" && args.includes("main.ts"))
    return args.includes("loader.mjs") ? "node (Hoist)" : "node (tsx cli)";
  return comm;
}

/**
 * The processes of a process group, as `ps -o pid=,rss=,comm= -g <pgid>` lists
 * them (the group is also the session: the child was started with setsid),
 * with RSS read from /proc/<pid>/status VmRSS. Zombies (already exited) are left out.
 */
export function groupProcesses(pgid: number): ProcessInfo[] {
  let out = "";
  try {
    out = execFileSync("ps", ["-o", "pid=,stat=,rss=,comm=", "-g", String(pgid)], { encoding: "utf8" });
  } catch {
    return []; // ps exits 1 when nothing matches
  }
  const list: ProcessInfo[] = [];
  for (const line of out.split("\n")) {
    const m = /^\s*(\d+)\s+(\S+)\s+(\d+)\s+(.*)$/.exec(line);
    if (!m || m[2]?.startsWith("Z")) continue;
    const pid = Number(m[1]);
    const comm = (m[4] ?? "").trim();
    let args = comm;
    try {
      args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
    } catch {}
    list.push({ pid, comm, args, rssKb: rssKb(pid) ?? Number(m[3]), role: roleOf(comm, args) });
  }
  return list;
}

/** Live (non-zombie) members of a process group, from /proc (independent of sessions). */
export function groupAlive(pgid: number): number[] {
  const alive: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // After "pid (comm) ": state, ppid, pgrp, …
      if (fields[0] !== "Z" && Number(fields[2]) === pgid) alive.push(Number(entry));
    } catch {}
  }
  return alive;
}

export interface StopResult {
  /** SIGTERM to the group → no live process left in it. */
  stopMs: number;
  /** True if something outlived the grace period and got SIGKILL. */
  forced: boolean;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
}

export interface HoistProcess {
  pgid: number;
  port: number;
  url: string;
  dataDir: string;
  /** Spawn of `npm start` → first 200 on /health/ready. */
  readyMs: number;
  /** "ready in N ms" as printed by main.ts (startRuntime only), when found. */
  reportedReadyMs: number | undefined;
  processes(): ProcessInfo[];
  /** The last 16 KiB of stdout+stderr. */
  output(): string;
  stop(): Promise<StopResult>;
}

const live = new Set<HoistProcess>();

/** Stops every Hoist still running, then removes the temp dirs still there (Ctrl+C, crashes, end of run). */
export async function cleanup(opts: { final?: boolean } = {}): Promise<void> {
  if (opts.final) closing = true;
  await Promise.all([...live].map((h) => h.stop().catch(() => undefined)));
  await Promise.all([...tempDirs].map((d) => removeDir(d).catch(() => undefined)));
}

/** The user's environment without what `npm run` and the caller added, so `npm start` runs as typed in a shell. */
function userEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_/i.test(k) || k === "INIT_CWD" || k === "NODE" || k === "PORT" || k.startsWith("HOIST_")) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

export interface StartOptions {
  /** Data directory to use; default: a fresh temporary one (removed by the caller with removeDir). */
  dataDir?: string;
  readyTimeoutMs?: number;
  /** Grace period after SIGTERM before SIGKILL. */
  stopTimeoutMs?: number;
  /** More environment (e.g. NODE_OPTIONS for a comparison run). */
  env?: Record<string, string>;
}

/**
 * Starts `npm start` exactly as a user would (PORT and HOIST_DATA_DIR set,
 * nothing else), detached so that it leads its own process group, and waits
 * for the first 200 on /health/ready.
 */
export async function startHoist(opts: StartOptions = {}): Promise<HoistProcess> {
  const dataDir = opts.dataDir ?? (await tempDir("data"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  assertOpen();
  const started = performance.now();
  const child: ChildProcess = spawn("npm", ["start"], {
    cwd: root,
    env: userEnv({
      HOIST_PLANS_FILE: join(root, "packages/core/src/testing/unlimited-plans.json"),
      ...opts.env,
      PORT: String(port),
      HOIST_DATA_DIR: dataDir,
    }),
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  if (child.pid === undefined) throw new Error("npm start could not be spawned");
  const pgid = child.pid;
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-16_384);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<void>((r) =>
    child.once("exit", (code, signal) => {
      exit = { code, signal };
      r();
    }),
  );
  let spawnError: Error | undefined;
  child.once("error", (err) => {
    spawnError = err;
  });

  let stopping: Promise<StopResult> | undefined;
  const stopTimeoutMs = opts.stopTimeoutMs ?? 20_000;
  const stop = () => {
    stopping ??= (async () => {
      const t0 = performance.now();
      let forced = false;
      try {
        process.kill(-pgid, "SIGTERM");
      } catch {}
      while (groupAlive(pgid).length > 0) {
        if (!forced && performance.now() - t0 > stopTimeoutMs) {
          forced = true;
          try {
            process.kill(-pgid, "SIGKILL");
          } catch {}
        }
        await sleep(20);
      }
      await Promise.race([exited, sleep(1000)]);
      live.delete(handle);
      return { stopMs: performance.now() - t0, forced, exitCode: exit?.code ?? null, signal: exit?.signal ?? null };
    })();
    return stopping;
  };

  const handle: HoistProcess = {
    pgid,
    port,
    url,
    dataDir,
    readyMs: Number.NaN,
    reportedReadyMs: undefined,
    processes: () => groupProcesses(pgid),
    output: () => output,
    stop,
  };
  live.add(handle);

  const deadline = started + (opts.readyTimeoutMs ?? 120_000);
  try {
    for (;;) {
      if (spawnError) throw spawnError;
      if (exit) throw new Error(`npm start exited (code ${exit.code}, signal ${exit.signal}) before it was ready`);
      if (performance.now() > deadline) throw new Error(`not ready within ${opts.readyTimeoutMs ?? 120_000} ms`);
      try {
        const res = await fetch(`${url}/health/ready`, { signal: AbortSignal.timeout(2000) });
        await res.arrayBuffer();
        if (res.status === 200) break;
      } catch {}
      await sleep(10);
    }
  } catch (err) {
    await stop();
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(`${message}\n--- output ---\n${output.trim()}`);
  }
  handle.readyMs = performance.now() - started;
  // main.ts prints its banner right after startRuntime resolves; give the pipe a moment.
  for (let i = 0; i < 50 && !/ready in \d+ ms/.test(output); i++) await sleep(10);
  const m = /ready in (\d+) ms/.exec(output);
  handle.reportedReadyMs = m ? Number(m[1]) : undefined;
  return handle;
}

// ───────────────────────────── formatting ─────────────────────────────

/** Milliseconds with precision that suits their size. */
export function ms(value: number): string {
  if (!Number.isFinite(value)) return "–";
  if (value < 10) return value.toFixed(2);
  if (value < 100) return value.toFixed(1);
  return value.toFixed(0);
}

export function mb(kib: number | undefined): string {
  return kib === undefined ? "–" : (kib / 1024).toFixed(1);
}

export function kb(bytes: number): string {
  return (bytes / 1024).toFixed(1);
}

export function mark(ok: boolean): string {
  return ok ? "✓" : "✗";
}

export function renderTable(t: Table): string {
  const cells = [t.columns, ...t.rows.map((r) => r.map(String))];
  const widths = t.columns.map((_, i) => Math.max(...cells.map((r) => [...String(r[i] ?? "")].length)));
  const pad = (s: string, i: number) => {
    const gap = " ".repeat(Math.max(0, (widths[i] ?? 0) - [...s].length));
    return (t.align?.[i] ?? (i === 0 ? "l" : "r")) === "l" ? s + gap : gap + s;
  };
  const line = (r: (string | number)[]) =>
    t.columns
      .map((_, i) => pad(String(r[i] ?? ""), i))
      .join("  ")
      .trimEnd();
  const rule = widths.map((w) => "─".repeat(w)).join("  ");
  const out = [t.title, line(t.columns), rule, ...t.rows.map(line)];
  for (const n of t.notes ?? []) out.push(`  ${n}`);
  return out.join("\n");
}
