/**
 * `npm run bench [-- [--json] [suite…]]`: runs the benchmark suites (default:
 * all) and prints a table per suite. Figures only: no timing is asserted; the
 * exit code is 0 unless a suite crashes (1) or the arguments are wrong (2).
 *
 * A suite is a module under scripts/bench/ exporting a `Suite`; register it
 * below. With `--json` the tables go to stderr and stdout gets one JSON document.
 */
import { execFileSync } from "node:child_process";
import { cpus, totalmem } from "node:os";
import { apps } from "./bench/apps.ts";
import { auth } from "./bench/auth.ts";
import { deploys } from "./bench/deploys.ts";
import { drain } from "./bench/drain.ts";
import { http } from "./bench/http.ts";
import { lambda } from "./bench/lambda.ts";
import { cleanup, renderTable, root, type Suite, type SuiteResult } from "./bench/lib.ts";
import { logs } from "./bench/logs.ts";
import { operate } from "./bench/operate.ts";
import { plans } from "./bench/plans.ts";
import { realtime } from "./bench/realtime.ts";
import { startup } from "./bench/startup.ts";

const suites: Suite[] = [startup, http, lambda, auth, apps, deploys, plans, logs, drain, realtime, operate];

/** Set on SIGINT/SIGTERM: what was started is being stopped; the run ends with 130. */
let interrupted = false;

function usage(): string {
  return [
    "usage: npm run bench -- [--json] [suite…]",
    "",
    "suites (default: all, in this order):",
    ...suites.map((s) => `  ${s.name.padEnd(10)} ${s.description}`),
  ].join("\n");
}

function gitRevision(): string {
  try {
    const rev = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root, encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain"], { cwd: root, encoding: "utf8" }).trim() !== "";
    return dirty ? `${rev}+changes` : rev;
  } catch {
    return "unknown";
  }
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  const json = args.includes("--json");
  const names = args.filter((a) => !a.startsWith("-"));
  const unknownFlags = args.filter((a) => a.startsWith("-") && a !== "--json");
  const unknown = names.filter((n) => !suites.some((s) => s.name === n));
  if (unknown.length > 0 || unknownFlags.length > 0) {
    process.stderr.write(`unknown: ${[...unknownFlags, ...unknown].join(", ")}\n\n${usage()}\n`);
    return 2;
  }
  const selected = names.length > 0 ? suites.filter((s) => names.includes(s.name)) : suites;

  // Tables go to stdout, or to stderr when stdout carries the JSON document.
  const print = (text: string) => (json ? process.stderr : process.stdout).write(`${text}\n`);
  const log = (name: string) => (message: string) => process.stderr.write(`  [${name}] ${message}\n`);

  const meta = {
    date: new Date().toISOString(),
    revision: gitRevision(),
    node: process.version,
    platform: `${process.platform}/${process.arch}`,
    cpus: `${cpus().length} × ${cpus()[0]?.model.trim() ?? "?"}`,
    memoryMiB: Math.round(totalmem() / 1024 / 1024),
  };
  print(
    `Hoist bench — ${meta.date}, rev ${meta.revision}, node ${meta.node}, ${meta.platform}, ${meta.cpus}, ${meta.memoryMiB} MiB RAM`,
  );

  const results: Record<string, { ok: true; ms: number; result: SuiteResult } | { ok: false; error: string }> = {};
  let crashed = false;
  for (const suite of selected) {
    process.stderr.write(`\n▶ ${suite.name}: ${suite.description}\n`);
    const t0 = performance.now();
    try {
      const result = await suite.run({ log: log(suite.name) });
      const ms = performance.now() - t0;
      results[suite.name] = { ok: true, ms, result };
      for (const table of result.tables) print(`\n${renderTable(table)}`);
      print(`  (${suite.name} took ${(ms / 1000).toFixed(1)} s)`);
    } catch (err) {
      if (interrupted) break;
      crashed = true;
      const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
      results[suite.name] = { ok: false, error };
      print(`\n✗ suite ${suite.name} crashed:\n${error}`);
      await cleanup();
    }
  }

  if (json) {
    const out = Object.fromEntries(
      Object.entries(results).map(([name, r]) => [
        name,
        r.ok ? { ok: true, ms: r.ms, data: r.result.data, tables: r.result.tables } : r,
      ]),
    );
    process.stdout.write(`${JSON.stringify({ meta, suites: out }, null, 2)}\n`);
  }
  return interrupted ? 130 : crashed ? 1 : 0;
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write(`\n${signal}: stopping what the bench started…\n`);
    void cleanup({ final: true }).finally(() => process.exit(130));
  });
}

main().then(
  async (code) => {
    await cleanup({ final: true });
    process.exit(code);
  },
  async (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    await cleanup({ final: true });
    process.exit(1);
  },
);
