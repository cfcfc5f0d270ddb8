/**
 * The Lambda entrypoints as SST v2 deploys them: bundle each with esbuild the
 * way SST's node handler does for an ESM nodejs22.x function, report sizes and
 * what fills them, then time `await import(bundle)` (SDK clients and the Hono
 * app are built at import) in fresh Node processes.
 *
 * No request leaves the machine: AWS_ENDPOINT_URL points every SDK client at a
 * loopback fake that records what is called at import (and answers SSM
 * GetParameters, which `sst/node/config` sends for secrets bound as
 * `__FETCH_FROM_SSM__`).
 */
import { spawn } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { gzipSync } from "node:zlib";
import { generateKeySetJson } from "@hoist/core/auth/keys";
import { build, version as esbuildVersion, type Metafile } from "esbuild";
import { lambdaEsbuild } from "../../infra/esbuild.ts";
import { kb, keepDir, mark, median, ms, removeDir, root, type Suite, type Table, tempDir } from "./lib.ts";

const ENTRYPOINTS = ["http", "ws", "deploy-worker", "auto-stop"];
const RUNS = 5;
const SIZE_TARGET_BYTES = 1024 * 1024;
const IMPORT_TARGET_MS = 150;
const TOP = 10;

/** What sst/runtime/handlers/node.js (SST 2.49) prepends to ESM bundles. */
const SST_ESM_BANNER = [
  `import { createRequire as topLevelCreateRequire } from 'module';`,
  `const require = topLevelCreateRequire(import.meta.url);`,
  `import { fileURLToPath as topLevelFileUrlToPath, URL as topLevelURL } from "url"`,
  `const __dirname = topLevelFileUrlToPath(new topLevelURL(".", import.meta.url))`,
  "",
].join("\n");

/** The environment the stacks give every function (plus static credentials, so nothing looks further). */
const LAMBDA_ENV: Record<string, string> = {
  HOIST_STAGE: "bench",
  HOIST_TABLE_NAME: "hoist-bench",
  HOIST_QUEUE_URL: "https://sqs.us-east-1.amazonaws.com/123456789012/deploy",
  HOIST_KMS_KEY_ID: "alias/hoist",
  HOIST_SCHEDULE_GROUP: "hoist-bench",
  HOIST_SCHEDULER_ROLE_ARN: "arn:aws:iam::123456789012:role/s",
  HOIST_AUTO_STOP_FUNCTION_ARN: "arn:aws:lambda:us-east-1:123456789012:function:a",
  HOIST_WS_ENDPOINT: "https://abc.execute-api.us-east-1.amazonaws.com/bench",
  AWS_REGION: "us-east-1",
  AWS_ACCESS_KEY_ID: "x",
  AWS_SECRET_ACCESS_KEY: "y",
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
};

/** SST v2 Config.Secret names (stacks/Data.ts) and which function binds which (`bind:` in stacks/). */
const SECRETS = ["JWT_PRIVATE_KEY", "GITHUB_CLIENT_SECRET", "GITHUB_WEBHOOK_SECRET"];
const BOUND: Record<string, string[]> = {
  http: SECRETS, // stacks/Api.ts
  ws: ["JWT_PRIVATE_KEY"], // stacks/Realtime.ts
  "deploy-worker": [], // stacks/Jobs.ts
  "auto-stop": [], // stacks/Schedules.ts
};
/** What SST's Function adds to every function's environment. */
const SST_ENV = { SST_APP: "hoist", SST_STAGE: "bench", SST_SSM_PREFIX: "/sst/hoist/bench/" };

/** A value each secret accepts: JWT_PRIVATE_KEY must be a key set (scripts/jwt-key.ts), the others any string. */
let jwtKeySet = "";
const secretValue = (name: string) => (name === "JWT_PRIVATE_KEY" ? jwtKeySet : "bench-secret");

interface Scenario {
  id: string;
  label: string;
  env(fn: string): Record<string, string>;
}

const SCENARIOS: Scenario[] = [
  { id: "brief", label: "HOIST_*/AWS_* only, no SST_*", env: () => ({}) },
  {
    id: "resolved",
    label: "SST env, 3 secrets as values",
    env: () => ({ ...SST_ENV, ...Object.fromEntries(SECRETS.map((s) => [`SST_Secret_value_${s}`, secretValue(s)])) }),
  },
  {
    id: "bound",
    label: "SST env as bound (SSM fetch)",
    env: (fn) => ({
      ...SST_ENV,
      ...Object.fromEntries((BOUND[fn] ?? []).map((s) => [`SST_Secret_value_${s}`, "__FETCH_FROM_SSM__"])),
    }),
  },
];

/** Runs in a fresh `node`: times the dynamic import of the bundle given as argv[1]. */
const IMPORT_RUNNER = `
const t0 = performance.now();
let r;
try {
  const m = await import(process.argv[1]);
  r = { ok: true, ms: performance.now() - t0, handler: typeof m.handler };
} catch (e) {
  r = { ok: false, ms: performance.now() - t0, error: (e && e.name ? e.name + ": " : "") + (e && e.message !== undefined ? e.message : String(e)) };
}
process.stdout.write("\\n@@bench " + JSON.stringify(r) + "\\n");
process.exit(0);
`;

interface ImportRun {
  ok: boolean;
  ms: number;
  processMs: number;
  handler?: string;
  error?: string;
  stderr: string;
  awsCalls: string[];
}

interface Bundle {
  fn: string;
  file?: string;
  bytes: number;
  gzipBytes: number;
  buildMs: number;
  warnings: string[];
  error?: string;
  packages: { name: string; bytes: number }[];
}

function packageOf(input: string): string {
  const parts = input.split("node_modules/");
  if (parts.length > 1) {
    const name = (p: string) => {
      const seg = p.split("/");
      return seg[0]?.startsWith("@") ? `${seg[0]}/${seg[1]}` : (seg[0] ?? p);
    };
    const pkg = name(parts[parts.length - 1] as string);
    return parts.length > 2 ? `${pkg} (nested in ${name(parts[parts.length - 2] as string)})` : pkg;
  }
  const ws = /^packages\/([^/]+)\//.exec(input);
  if (ws) return `@hoist/${ws[1]}`;
  return input.startsWith("<") || input.startsWith("(") ? "(esbuild runtime)" : "(other)";
}

function family(pkg: string): string {
  const m = /^(@[^/]+)\//.exec(pkg);
  return m ? `${m[1]}/*` : (pkg.split(" ")[0] ?? pkg);
}

async function bundle(fn: string, outdir: string): Promise<Bundle> {
  const outfile = join(outdir, `${fn}.mjs`);
  const t0 = performance.now();
  try {
    const result = await build({
      absWorkingDir: root,
      entryPoints: [join(root, "packages/functions/src", `${fn}.ts`)],
      outfile,
      // As sst/runtime/handlers/node.js builds an ESM function for `sst deploy`.
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node22",
      mainFields: ["module", "main"],
      banner: { js: SST_ESM_BANNER },
      keepNames: true,
      minify: true,
      sourcemap: false,
      metafile: true,
      logLevel: "silent",
      ...lambdaEsbuild,
    });
    const buildMs = performance.now() - t0;
    const output = Object.values(result.metafile?.outputs ?? {})[0] as Metafile["outputs"][string];
    const byPkg = new Map<string, number>();
    for (const [path, { bytesInOutput }] of Object.entries(output.inputs))
      byPkg.set(packageOf(path), (byPkg.get(packageOf(path)) ?? 0) + bytesInOutput);
    const content = readFileSync(outfile);
    return {
      fn,
      file: outfile,
      bytes: statSync(outfile).size,
      gzipBytes: gzipSync(content).length,
      buildMs,
      warnings: result.warnings.map((w) => `${w.text}${w.location ? ` (${w.location.file}:${w.location.line})` : ""}`),
      packages: [...byPkg].map(([name, bytes]) => ({ name, bytes })).sort((a, b) => b.bytes - a.bytes),
    };
  } catch (err) {
    return {
      fn,
      bytes: 0,
      gzipBytes: 0,
      buildMs: performance.now() - t0,
      warnings: [],
      error: err instanceof Error ? err.message : String(err),
      packages: [],
    };
  }
}

/** A loopback stand-in for every AWS endpoint: records calls, answers SSM GetParameters with values the secrets accept. */
async function fakeAws(): Promise<{ url: string; calls: string[]; server: Server }> {
  const calls: string[] = [];
  const body = (req: IncomingMessage) =>
    new Promise<string>((ok) => {
      let s = "";
      req.on("data", (c: Buffer) => {
        s += c.toString();
      });
      req.on("end", () => ok(s));
    });
  const server = createServer(async (req, res) => {
    const target = String(req.headers["x-amz-target"] ?? `${req.method} ${req.url}`);
    const text = await body(req);
    if (target === "AmazonSSM.GetParameters") {
      const names: string[] = (JSON.parse(text || "{}") as { Names?: string[] }).Names ?? [];
      calls.push(`SSM GetParameters(${names.length})`);
      res.writeHead(200, { "content-type": "application/x-amz-json-1.1" });
      res.end(
        JSON.stringify({
          Parameters: names.map((Name) => ({
            Name,
            Type: "SecureString",
            Value: secretValue(Name.split("/").at(-2) ?? ""),
            Version: 1,
          })),
          InvalidParameters: [],
        }),
      );
      return;
    }
    calls.push(target.replace(/^[A-Za-z0-9_]+\./, ""));
    res.writeHead(400, { "content-type": "application/x-amz-json-1.1" });
    res.end(JSON.stringify({ __type: "UnrecognizedClientException", message: "bench: no AWS here" }));
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", () => ok()));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, calls, server };
}

async function importOnce(file: string, env: Record<string, string>, calls: string[]): Promise<ImportRun> {
  calls.length = 0;
  const t0 = performance.now();
  const child = spawn(process.execPath, ["--input-type=module", "-e", IMPORT_RUNNER, pathToFileURL(file).href], {
    cwd: root,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr?.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const code = await new Promise<number | null>((ok) => child.once("close", (c) => ok(c)));
  clearTimeout(timer);
  const processMs = performance.now() - t0;
  const line = /@@bench (.*)/.exec(stdout)?.[1];
  const base = { processMs, stderr: stderr.trim(), awsCalls: [...calls] };
  if (!line) return { ok: false, ms: Number.NaN, error: `no result (exit ${code}): ${stderr.trim()}`, ...base };
  return { ...(JSON.parse(line) as { ok: boolean; ms: number; handler?: string; error?: string }), ...base };
}

export const lambda: Suite = {
  name: "lambda",
  description: "esbuild bundles of the Lambda entrypoints (size, top contributors) and import+init time",
  async run(ctx) {
    jwtKeySet = JSON.stringify(JSON.parse(await generateKeySetJson()));
    const outdir = await tempDir("lambda");
    const bundles: Bundle[] = [];
    const imports: { fn: string; scenario: string; runs: ImportRun[] }[] = [];
    const aws = await fakeAws();
    try {
      for (const fn of ENTRYPOINTS) {
        ctx.log(`bundling ${fn}…`);
        bundles.push(await bundle(fn, outdir));
      }
      for (const b of bundles) {
        if (!b.file) continue;
        for (const s of SCENARIOS) {
          ctx.log(`import ${b.fn} × ${RUNS} (${s.label})…`);
          const env = { ...LAMBDA_ENV, AWS_ENDPOINT_URL: aws.url, ...s.env(b.fn) };
          const runs: ImportRun[] = [];
          for (let i = 0; i < RUNS; i++) runs.push(await importOnce(b.file, env, aws.calls));
          imports.push({ fn: b.fn, scenario: s.id, runs });
        }
      }
    } finally {
      await new Promise<void>((ok) => aws.server.close(() => ok()));
      if (process.env.BENCH_KEEP_BUNDLES) {
        keepDir(outdir);
        ctx.log(`bundles kept in ${outdir}`);
      } else await removeDir(outdir);
    }

    const sizeTable: Table = {
      title: `lambda — bundles (esbuild ${esbuildVersion}; SST v2 ESM options: bundle, platform node, target node22, minify, keepNames, mainFields module,main, createRequire banner, no externals, no sourcemap)`,
      columns: ["function", "bytes", "KiB", "gzip KiB", `≤ ${SIZE_TARGET_BYTES / 1024 / 1024} MiB`, "build ms"],
      rows: bundles.map((b) =>
        b.error
          ? [b.fn, "build failed", "", "", "✗", ms(b.buildMs)]
          : [b.fn, b.bytes, kb(b.bytes), kb(b.gzipBytes), mark(b.bytes <= SIZE_TARGET_BYTES), ms(b.buildMs)],
      ),
      notes: [
        ...bundles.filter((b) => b.error).map((b) => `! ${b.fn}: ${b.error}`),
        ...bundles.flatMap((b) => b.warnings.map((w) => `${b.fn} warning: ${w}`)),
      ],
    };

    const errors: string[] = [];
    const errorRef = (e: string) => {
      if (!errors.includes(e)) errors.push(e);
      return `[${errors.indexOf(e) + 1}]`;
    };
    const importRows = imports.map(({ fn, scenario, runs }) => {
      const ok = runs.filter((r) => r.ok);
      const failed = runs.filter((r) => !r.ok);
      const times = runs.map((r) => r.ms).filter(Number.isFinite);
      const med = median(times);
      const calls = [...new Set(runs.flatMap((r) => r.awsCalls))];
      const callsPerRun = runs[0]?.awsCalls.length ?? 0;
      const result =
        failed.length === 0
          ? `ok (handler: ${ok[0]?.handler})`
          : `${failed.length}/${runs.length} threw ${[...new Set(failed.map((r) => errorRef(r.error ?? "?")))].join(" ")}`;
      return [
        fn,
        SCENARIOS.find((s) => s.id === scenario)?.label ?? scenario,
        result,
        ms(med),
        ms(Math.max(...times)),
        failed.length ? "–" : mark(med <= IMPORT_TARGET_MS),
        ms(median(runs.map((r) => r.processMs))),
        calls.length ? `${calls.join(", ")} ×${callsPerRun}/run` : "none",
      ];
    });
    const stderrLines = [
      ...new Set(imports.flatMap((i) => i.runs.map((r) => r.stderr)).filter((s) => s.length > 0)),
    ].map((s) => `stderr: ${s.split("\n")[0]}`);
    const importTable: Table = {
      title: `lambda — \`await import(bundle)\` in a fresh node ${process.version} (Lambda runs nodejs22.x), ${RUNS} runs each`,
      columns: [
        "function",
        "environment",
        "result",
        "median ms",
        "max ms",
        `≤ ${IMPORT_TARGET_MS} ms`,
        "process ms",
        "AWS calls at import",
      ],
      align: ["l", "l", "l", "r", "r", "r", "r", "l"],
      rows: importRows,
      notes: [
        "ms: performance.now() around the import (or until it threw); process ms: spawn → exit of the whole node process.",
        "Every environment = the stacks' HOIST_*/AWS_* variables + AWS_ENDPOINT_URL → loopback fake (records calls).",
        "  HOIST_*/AWS_* only: exactly those variables. SST env: + SST_APP/SST_STAGE/SST_SSM_PREFIX and",
        "  SST_Secret_value_<NAME>: all three as plain values (as if bound and prefetched), or only the ones",
        "  stacks/ binds to that function, as `__FETCH_FROM_SSM__` (what a deployed function gets by default).",
        ...errors.map((e, i) => `[${i + 1}] ${e}`),
        ...stderrLines,
      ],
    };

    const contributorTables: Table[] = bundles
      .filter((b) => !b.error)
      .map((b) => {
        const families = new Map<string, number>();
        for (const p of b.packages) families.set(family(p.name), (families.get(family(p.name)) ?? 0) + p.bytes);
        const topFamilies = [...families]
          .sort((x, y) => y[1] - x[1])
          .slice(0, 6)
          .map(([f, n]) => `${f} ${kb(n)} KiB (${((100 * n) / b.bytes).toFixed(0)}%)`);
        return {
          title: `lambda — top ${TOP} contributors to ${b.fn}.mjs (${kb(b.bytes)} KiB, ${b.packages.length} packages; bytes in the minified output)`,
          columns: ["package", "KiB", "% of bundle"],
          rows: b.packages
            .slice(0, TOP)
            .map((p) => [p.name, kb(p.bytes), `${((100 * p.bytes) / b.bytes).toFixed(1)}%`]),
          notes: [`by family: ${topFamilies.join(", ")}`],
        };
      });

    return {
      tables: [sizeTable, ...contributorTables, importTable],
      data: {
        esbuild: esbuildVersion,
        node: process.version,
        targets: { bundleBytes: SIZE_TARGET_BYTES, importMs: IMPORT_TARGET_MS },
        bundles: bundles.map(({ file: _f, ...b }) => b),
        imports: imports.map(({ fn, scenario, runs }) => ({
          fn,
          scenario,
          medianMs: median(runs.map((r) => r.ms).filter(Number.isFinite)),
          maxMs: Math.max(...runs.map((r) => r.ms).filter(Number.isFinite)),
          runs,
        })),
      },
    };
  },
};
