/**
 * The Lambda entrypoints as SST v2 deploys them: bundle each with SST's own
 * esbuild and the options its node handler composes for an ESM function from
 * the `nodejs` props in infra/esbuild.ts (the ones sst.config.ts deploys),
 * report sizes and what fills them, then time `await import(bundle)` (SDK
 * clients and the Hono app are built at import) in fresh Node processes.
 *
 * With code splitting a function is an entry file and chunks: those the entry
 * imports statically are loaded at cold start, those behind `import()` on
 * first use. A traced import (module load hooks) records which files each
 * environment really loads at import; that set is what the size goal judges.
 *
 * No request leaves the machine: AWS_ENDPOINT_URL points every SDK client at a
 * loopback fake that records what is called at import (and answers SSM
 * GetParameters, sent for secrets bound as `__FETCH_FROM_SSM__`).
 */
import { spawn } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { cpus, loadavg } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { gzipSync } from "node:zlib";
import { generateKeySetJson } from "@hoist/core/auth/keys";
import { httpEvent } from "@hoist/functions/testing/http-event";
import type { BuildOptions, Metafile } from "esbuild";
import { lambdaNodejs } from "../../infra/esbuild.ts";
import { kb, keepDir, mark, median, ms, removeDir, root, type Suite, type Table, tempDir } from "./lib.ts";

const ENTRYPOINTS = ["http", "ws", "deploy-worker", "auto-stop"];
/**
 * The http function builds its route groups on first use: each run also times
 * its first request, `GET /health` (a group that reads no table), as API
 * Gateway's HTTP API (payload 2.0) would deliver it.
 */
const FIRST_REQUEST: Record<string, { label: string; event: object }> = {
  http: {
    label: "GET /health",
    event: httpEvent("GET", "/health"),
  },
};
const RUNS = 5;
/** 1 MB as 10^6 bytes (the stricter reading of "1 MB"; 1 MiB is 1 048 576). */
const SIZE_TARGET_BYTES = 1_000_000;
const IMPORT_TARGET_MS = 150;
const TOP = 10;

/** The esbuild SST deploys with (its own dependency, older than the repository's). */
const esbuild = createRequire(createRequire(import.meta.url).resolve("sst/package.json"))(
  "esbuild",
) as typeof import("esbuild");

/** What sst/runtime/handlers/node.js (SST 2.49) prepends to ESM bundles (each chunk too). */
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

/**
 * The SST v2 secrets each function binds (`bind:` in stacks/), all of them
 * prefetched (`prefetchSecrets`: written into the environment at deploy). The
 * http function's optional OpenID Connect secrets are not bound: it reads them
 * on the first sign-in with the provider (aws-deps.ts), never at import.
 */
const BOUND: Record<string, string[]> = {
  http: ["JWT_PRIVATE_KEY", "GITHUB_CLIENT_SECRET", "GITHUB_WEBHOOK_SECRET"], // stacks/Api.ts
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
  /** Whether the import goal judges this environment (not: a transient one). */
  judged: boolean;
}

const SCENARIOS: Scenario[] = [
  { id: "brief", label: "HOIST_*/AWS_* only, no SST_*", env: () => ({}), judged: true },
  {
    id: "deployed",
    label: "SST env as deployed (prefetched)",
    env: (fn) => ({
      ...SST_ENV,
      ...Object.fromEntries((BOUND[fn] ?? []).map((s) => [`SST_Secret_value_${s}`, secretValue(s)])),
    }),
    judged: true,
  },
  {
    id: "unfetched",
    label: "SST env before prefetch (SSM)",
    env: (fn) => ({
      ...SST_ENV,
      ...Object.fromEntries((BOUND[fn] ?? []).map((s) => [`SST_Secret_value_${s}`, "__FETCH_FROM_SSM__"])),
    }),
    judged: false,
  },
];

/**
 * Runs in a fresh `node`: times the dynamic import of the bundle given as
 * argv[1]. With argv[2] = "trace" (a separate, untimed run) a module load hook
 * reports every file the import loads: the entry and the chunks it pulls in.
 */
const IMPORT_RUNNER = `
const loaded = [];
let port;
if (process.argv[2] === "trace") {
  const { register } = await import("node:module");
  const { MessageChannel } = await import("node:worker_threads");
  const channel = new MessageChannel();
  port = channel.port1;
  const hooks = "let port; export function initialize(data) { port = data.port; }" +
    " export async function load(url, context, next) { if (url.startsWith('file:')) port.postMessage(url); return next(url, context); }";
  register("data:text/javascript," + encodeURIComponent(hooks), { data: { port: channel.port2 }, transferList: [channel.port2] });
}
const c0 = process.cpuUsage();
const t0 = performance.now();
let r;
let m;
try {
  m = await import(process.argv[1]);
  r = { ok: true, ms: performance.now() - t0, handler: typeof m.handler };
} catch (e) {
  r = { ok: false, ms: performance.now() - t0, error: (e && e.name ? e.name + ": " : "") + (e && e.message !== undefined ? e.message : String(e)) };
}
const c = process.cpuUsage(c0);
r.cpuMs = (c.user + c.system) / 1000;
if (r.ok && process.env.BENCH_FIRST_EVENT) {
  const t1 = performance.now();
  try {
    const res = await m.handler(JSON.parse(process.env.BENCH_FIRST_EVENT), { awsRequestId: "bench", getRemainingTimeInMillis: () => 29000 });
    r.first = { ms: performance.now() - t1, status: res && res.statusCode };
  } catch (e) {
    r.first = { ms: performance.now() - t1, error: String(e) };
  }
}
if (port) {
  const { receiveMessageOnPort } = await import("node:worker_threads");
  for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) loaded.push(m.message);
  r.loaded = loaded;
}
process.stdout.write("\\n@@bench " + JSON.stringify(r) + "\\n");
process.exit(0);
`;

interface ImportRun {
  ok: boolean;
  ms: number;
  /** CPU time (user + system, every thread of the process) spent during the import. */
  cpuMs?: number;
  processMs: number;
  handler?: string;
  error?: string;
  stderr: string;
  awsCalls: string[];
  /** Bundle files the import loaded (traced runs only). */
  loaded?: string[];
  /** The first request after the import (functions with FIRST_REQUEST): what a lazily built route group costs. */
  first?: { ms: number; status?: number; error?: string };
}

/** One output file of a function's build: the entry, a chunk it imports statically, or one behind `import()`. */
interface BundleFile {
  name: string;
  bytes: number;
  gzipBytes: number;
  kind: "entry" | "static" | "lazy";
  /** Packages by bytes in this file. */
  packages: { name: string; bytes: number }[];
}

interface Bundle {
  fn: string;
  dir?: string;
  entry?: string;
  files: BundleFile[];
  buildMs: number;
  warnings: string[];
  error?: string;
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

const sum = (files: { bytes: number }[]) => files.reduce((n, f) => n + f.bytes, 0);

/**
 * What sst/runtime/handlers/node.js (SST 2.49) passes to esbuild for a
 * `sst deploy` of an ESM function with these `nodejs` props, in its order
 * (`nodejs.esbuild` last, its `external` appended to SST's own).
 */
function sstBuildOptions(entry: string, outdir: string): BuildOptions {
  const { esbuild: override, ...nodejs } = lambdaNodejs;
  const { external = [], ...rest } = override;
  const name = basename(entry).replace(/\.ts$/, ".mjs");
  return {
    entryPoints: [entry],
    platform: "node",
    external: ["sharp", "pg-native", ...external],
    keepNames: true,
    bundle: true,
    logLevel: "silent",
    splitting: nodejs.splitting,
    metafile: true,
    outExtension: nodejs.splitting ? { ".js": ".mjs" } : undefined,
    format: "esm",
    // SST's target, esnext, is overridden by lambdaEsbuild's (the runtime's).
    mainFields: ["module", "main"],
    banner: { js: SST_ESM_BANNER },
    outfile: nodejs.splitting ? undefined : join(outdir, name),
    outdir: nodejs.splitting ? outdir : undefined,
    // SST deploys with source maps unless `nodejs.sourcemap` is false; it moves one out of the code, the others stay.
    sourcemap: (lambdaNodejs as { sourcemap?: boolean }).sourcemap !== false,
    minify: nodejs.minify,
    ...rest,
  };
}

async function bundle(fn: string, outdir: string): Promise<Bundle> {
  const entry = join(root, "packages/functions/src", `${fn}.ts`);
  const t0 = performance.now();
  try {
    const result = await esbuild.build({ absWorkingDir: root, ...sstBuildOptions(entry, outdir) });
    const buildMs = performance.now() - t0;
    const outputs = (result.metafile as Metafile).outputs;
    const code = Object.keys(outputs).filter((o) => o.endsWith(".mjs"));
    const entryOut = code.find((o) => outputs[o]?.entryPoint === `packages/functions/src/${fn}.ts`);
    if (!entryOut) throw new Error(`no output for ${fn}.ts`);
    // The entry's static imports, transitively: what loads with it whatever the environment.
    const staticSet = new Set<string>();
    const visit = (o: string) => {
      if (staticSet.has(o)) return;
      staticSet.add(o);
      for (const i of outputs[o]?.imports ?? []) if (i.kind === "import-statement" && outputs[i.path]) visit(i.path);
    };
    visit(entryOut);
    const files: BundleFile[] = code.map((o) => {
      const byPkg = new Map<string, number>();
      for (const [path, { bytesInOutput }] of Object.entries(outputs[o]?.inputs ?? {}))
        byPkg.set(packageOf(path), (byPkg.get(packageOf(path)) ?? 0) + bytesInOutput);
      return {
        name: basename(o),
        bytes: statSync(join(root, o)).size,
        gzipBytes: gzipSync(readFileSync(join(root, o))).length,
        kind: o === entryOut ? "entry" : staticSet.has(o) ? "static" : "lazy",
        packages: [...byPkg].map(([name, bytes]) => ({ name, bytes })).sort((a, b) => b.bytes - a.bytes),
      };
    });
    const order = { entry: 0, static: 1, lazy: 2 };
    files.sort((a, b) => order[a.kind] - order[b.kind] || b.bytes - a.bytes);
    return {
      fn,
      dir: outdir,
      entry: join(outdir, basename(entryOut)),
      files,
      buildMs,
      warnings: result.warnings.map((w) => `${w.text}${w.location ? ` (${w.location.file}:${w.location.line})` : ""}`),
    };
  } catch (err) {
    return {
      fn,
      files: [],
      buildMs: performance.now() - t0,
      warnings: [],
      error: err instanceof Error ? err.message : String(err),
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

async function importOnce(
  file: string,
  env: Record<string, string>,
  calls: string[],
  trace = false,
): Promise<ImportRun> {
  calls.length = 0;
  const t0 = performance.now();
  const args = ["--input-type=module", "-e", IMPORT_RUNNER, pathToFileURL(file).href, ...(trace ? ["trace"] : [])];
  const child = spawn(process.execPath, args, {
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
  return { ...(JSON.parse(line) as Omit<ImportRun, keyof typeof base>), ...base };
}

interface Loaded {
  scenario: string;
  files: BundleFile[];
}

/** The bundle files a traced import loaded (entry, static chunks, and lazy chunks pulled in at init). */
function loadedFiles(b: Bundle, run: ImportRun | undefined): BundleFile[] | undefined {
  if (!run?.ok || !run.loaded || !b.dir) return undefined;
  const names = new Set(
    run.loaded
      .map((u) => fileURLToPath(u))
      .filter((p) => p.startsWith(`${b.dir}/`))
      .map((p) => basename(p)),
  );
  return b.files.filter((f) => names.has(f.name));
}

/** Median time and status of the first request after the import, for a function that makes one. */
function firstRequest(fn: string, runs: ImportRun[]): string {
  if (!FIRST_REQUEST[fn]) return "–";
  const firsts = runs.flatMap((r) => (r.first ? [r.first] : []));
  const failed = firsts.find((f) => f.error);
  if (failed) return `threw: ${failed.error}`;
  const statuses = [...new Set(firsts.map((f) => f.status))].join("/");
  return `${ms(median(firsts.map((f) => f.ms)))} (${statuses})`;
}

export const lambda: Suite = {
  name: "lambda",
  description: "esbuild bundles of the Lambda entrypoints (size, chunks, top contributors) and import+init time",
  async run(ctx) {
    const load = [loadavg()[0] ?? Number.NaN];
    jwtKeySet = JSON.stringify(JSON.parse(await generateKeySetJson()));
    const outdir = await tempDir("lambda");
    const bundles: Bundle[] = [];
    const imports: { fn: string; scenario: string; runs: ImportRun[]; trace: ImportRun }[] = [];
    const aws = await fakeAws();
    try {
      for (const fn of ENTRYPOINTS) {
        ctx.log(`bundling ${fn}…`);
        bundles.push(await bundle(fn, join(outdir, fn)));
      }
      for (const b of bundles) {
        if (!b.entry) continue;
        for (const s of SCENARIOS) {
          ctx.log(`import ${b.fn} × ${RUNS} + 1 traced (${s.label})…`);
          const first = FIRST_REQUEST[b.fn];
          const env = {
            ...LAMBDA_ENV,
            AWS_ENDPOINT_URL: aws.url,
            ...s.env(b.fn),
            ...(first ? { BENCH_FIRST_EVENT: JSON.stringify(first.event) } : {}),
          };
          const runs: ImportRun[] = [];
          for (let i = 0; i < RUNS; i++) runs.push(await importOnce(b.entry, env, aws.calls));
          const trace = await importOnce(b.entry, env, aws.calls, true);
          imports.push({ fn: b.fn, scenario: s.id, runs, trace });
        }
      }
    } finally {
      await new Promise<void>((ok) => aws.server.close(() => ok()));
      load.push(loadavg()[0] ?? Number.NaN);
      if (process.env.BENCH_KEEP_BUNDLES) {
        keepDir(outdir);
        ctx.log(`bundles kept in ${outdir}`);
      } else await removeDir(outdir);
    }

    // Per function: what each environment loads at import (traced), and the largest of those, which the goal judges.
    const loadedBy = new Map<string, Loaded[]>();
    for (const b of bundles) {
      const staticFiles = b.files.filter((f) => f.kind !== "lazy");
      loadedBy.set(
        b.fn,
        imports
          .filter((i) => i.fn === b.fn)
          .map((i) => ({ scenario: i.scenario, files: loadedFiles(b, i.trace) ?? staticFiles })),
      );
    }
    const atImport = (b: Bundle): Loaded =>
      (loadedBy.get(b.fn) ?? []).reduce<Loaded>((w, l) => (sum(l.files) > sum(w.files) ? l : w), {
        scenario: "static",
        files: b.files.filter((f) => f.kind !== "lazy"),
      });
    const scenarioLabel = (id: string) => SCENARIOS.find((s) => s.id === id)?.label ?? id;

    const sizeTable: Table = {
      title: `lambda — bundles as \`sst deploy\` builds them (SST's esbuild ${esbuild.version}; infra/esbuild.ts lambdaNodejs: ESM, minify, splitting, target node22, keepNames, createRequire banner; bytes of .mjs files, source maps apart)`,
      columns: [
        "function",
        "at import B",
        "KiB",
        "gzip KiB",
        `≤ ${SIZE_TARGET_BYTES.toLocaleString("en")} B`,
        "entry+static B",
        "files",
        "lazy chunks",
        "build ms",
      ],
      rows: bundles.map((b) => {
        if (b.error) return [b.fn, "build failed", "", "", "✗", "", "", "", ms(b.buildMs)];
        const worst = atImport(b);
        const lazy = b.files.filter((f) => f.kind === "lazy");
        return [
          b.fn,
          sum(worst.files),
          kb(sum(worst.files)),
          kb(worst.files.reduce((n, f) => n + f.gzipBytes, 0)),
          mark(sum(worst.files) <= SIZE_TARGET_BYTES),
          sum(b.files.filter((f) => f.kind !== "lazy")),
          b.files.length,
          `${lazy.length}, ${kb(sum(lazy))} KiB`,
          ms(b.buildMs),
        ];
      }),
      notes: [
        "at import: the files a traced `await import()` loaded, in the environment that loads the most (below); the goal judges it.",
        "entry+static: the entry and the chunks it imports statically (loaded in every environment).",
        "lazy chunks: behind `import()`, loaded on first use (some may load at init: listed below when they do).",
        ...bundles
          .filter((b) => !b.error)
          .flatMap((b) =>
            (loadedBy.get(b.fn) ?? [])
              .map((l) => ({ ...l, lazy: l.files.filter((f) => f.kind === "lazy") }))
              .filter((l) => l.lazy.length > 0)
              .map(
                (l) =>
                  `${b.fn}, ${scenarioLabel(l.scenario)}: + lazy ${l.lazy.map((f) => `${f.name} ${kb(f.bytes)} KiB`).join(", ")} at init`,
              ),
          ),
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
      const loaded = loadedBy.get(fn)?.find((l) => l.scenario === scenario)?.files ?? [];
      const result =
        failed.length === 0
          ? `ok (handler: ${ok[0]?.handler})`
          : `${failed.length}/${runs.length} threw ${[...new Set(failed.map((r) => errorRef(r.error ?? "?")))].join(" ")}`;
      return [
        fn,
        scenarioLabel(scenario),
        result,
        ms(med),
        ms(Math.max(...times)),
        failed.length
          ? "–"
          : SCENARIOS.find((s) => s.id === scenario)?.judged
            ? mark(med <= IMPORT_TARGET_MS)
            : "(not)",
        ms(median(runs.map((r) => r.cpuMs ?? Number.NaN).filter(Number.isFinite))),
        ms(median(runs.map((r) => r.processMs))),
        firstRequest(fn, runs),
        `${loaded.length} (${kb(sum(loaded))} KiB)`,
        calls.length ? `${calls.join(", ")} ×${callsPerRun}/run` : "none",
      ];
    });
    const stderrLines = [
      ...new Set(imports.flatMap((i) => i.runs.map((r) => r.stderr)).filter((s) => s.length > 0)),
    ].map((s) => `stderr: ${s.split("\n")[0]}`);
    const traceFailures = imports
      .filter((i) => i.trace.ok && !i.trace.loaded)
      .map((i) => `${i.fn}, ${scenarioLabel(i.scenario)}: trace recorded nothing; counted the static files`);
    const importTable: Table = {
      title: `lambda — \`await import(entry)\` in a fresh node ${process.version} (Lambda runs nodejs22.x), ${RUNS} runs each`,
      columns: [
        "function",
        "environment",
        "result",
        "median ms",
        "max ms",
        `≤ ${IMPORT_TARGET_MS} ms`,
        "cpu ms",
        "process ms",
        "then 1st request",
        "files loaded",
        "AWS calls at import",
      ],
      align: ["l", "l", "l", "r", "r", "r", "r", "r", "r", "r", "l"],
      rows: importRows,
      notes: [
        "ms: performance.now() around the import (or until it threw), chunks it loads included; process ms: spawn → exit of the whole node process.",
        "cpu ms: median user+system CPU of the process during the import (parse, init, GC threads): less swayed than ms by other",
        `  work on the machine (load average ${load.map((l) => l.toFixed(1)).join(" → ")} over this suite, ${cpus().length} CPUs).`,
        "files loaded: bundle files (entry + chunks) an extra, untimed run with a module load hook saw loaded.",
        ...Object.entries(FIRST_REQUEST).map(
          ([fn, f]) =>
            `then 1st request: ${fn}'s handler called with ${f.label} right after the import (median ms, status): ` +
            "what building its route group (and loading zod with it) costs the first request.",
        ),
        "Every environment = the stacks' HOIST_*/AWS_* variables + AWS_ENDPOINT_URL → loopback fake (records calls).",
        "  HOIST_*/AWS_* only: exactly those variables. SST env: + SST_APP/SST_STAGE/SST_SSM_PREFIX and",
        "  SST_Secret_value_<NAME> for the secrets stacks/ binds to that function: as deployed, their values (stacks/",
        "  prefetch them: SST writes them into the environment at deploy); before prefetch, `__FETCH_FROM_SSM__`, read",
        "  from SSM at import: what a function sees in the seconds between a deploy updating it and SST's prefetcher",
        "  (and what every cold start did before prefetching). Not judged: it is transient.",
        ...traceFailures,
        ...errors.map((e, i) => `[${i + 1}] ${e}`),
        ...stderrLines,
      ],
    };

    const contributorTables: Table[] = bundles
      .filter((b) => !b.error)
      .map((b) => {
        const worst = atImport(b);
        const total = sum(worst.files);
        const byPkg = new Map<string, number>();
        for (const f of worst.files) for (const p of f.packages) byPkg.set(p.name, (byPkg.get(p.name) ?? 0) + p.bytes);
        const packages = [...byPkg].sort((x, y) => y[1] - x[1]);
        const families = new Map<string, number>();
        for (const [name, bytes] of packages) families.set(family(name), (families.get(family(name)) ?? 0) + bytes);
        const topFamilies = [...families]
          .sort((x, y) => y[1] - x[1])
          .slice(0, 6)
          .map(([f, n]) => `${f} ${kb(n)} KiB (${((100 * n) / total).toFixed(0)}%)`);
        const lazy = b.files
          .filter((f) => f.kind === "lazy" && !worst.files.includes(f))
          .slice(0, 4)
          .map((f) => `${f.name} ${kb(f.bytes)} KiB (${f.packages[0]?.name ?? "?"} ${kb(f.packages[0]?.bytes ?? 0)})`);
        return {
          title: `lambda — top ${TOP} contributors to what ${b.fn} loads at import (${kb(total)} KiB in ${worst.files.length} files, ${packages.length} packages; bytes in the minified output)`,
          columns: ["package", "KiB", "% at import"],
          rows: packages
            .slice(0, TOP)
            .map(([name, bytes]) => [name, kb(bytes), `${((100 * bytes) / total).toFixed(1)}%`]),
          notes: [
            `by family: ${topFamilies.join(", ")}`,
            ...(lazy.length > 0 ? [`largest lazy chunks (not loaded at import): ${lazy.join(", ")}`] : []),
          ],
        };
      });

    return {
      tables: [sizeTable, ...contributorTables, importTable],
      data: {
        esbuild: esbuild.version,
        node: process.version,
        loadAverage: load,
        targets: { bundleBytes: SIZE_TARGET_BYTES, importMs: IMPORT_TARGET_MS },
        bundles: bundles.map(({ dir: _d, entry: _e, ...b }) => ({
          ...b,
          atImportBytes: Object.fromEntries((loadedBy.get(b.fn) ?? []).map((l) => [l.scenario, sum(l.files)])),
          staticBytes: sum(b.files.filter((f) => f.kind !== "lazy")),
          lazyBytes: sum(b.files.filter((f) => f.kind === "lazy")),
        })),
        imports: imports.map(({ fn, scenario, runs, trace }) => ({
          fn,
          scenario,
          medianMs: median(runs.map((r) => r.ms).filter(Number.isFinite)),
          medianCpuMs: median(runs.map((r) => r.cpuMs ?? Number.NaN).filter(Number.isFinite)),
          maxMs: Math.max(...runs.map((r) => r.ms).filter(Number.isFinite)),
          runs,
          loaded: trace.loaded?.map((u) => basename(fileURLToPath(u))),
        })),
      },
    };
  },
};
