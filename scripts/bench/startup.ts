/**
 * Cold start of `npm start` to the first 200 on /health/ready: three starts on
 * fresh data directories, then a second start on an existing one; resident
 * memory of each process in the group once ready.
 */
import {
  type HoistProcess,
  mb,
  median,
  ms,
  type ProcessInfo,
  removeDir,
  type StopResult,
  type Suite,
  startHoist,
  type Table,
  tempDir,
} from "./lib.ts";

const FRESH_RUNS = 3;

interface Run {
  label: string;
  dataDir: "fresh" | "existing";
  readyMs: number;
  reportedReadyMs: number | undefined;
  processes: ProcessInfo[];
  stop: StopResult;
}

const rssOf = (ps: ProcessInfo[], role: string) => ps.find((p) => p.role === role)?.rssKb;
const total = (ps: ProcessInfo[]) => ps.reduce((a, p) => a + p.rssKb, 0);

async function once(label: string, dataDir: string, kind: Run["dataDir"]): Promise<Run> {
  let hoist: HoistProcess | undefined;
  try {
    hoist = await startHoist({ dataDir });
    const processes = hoist.processes();
    const stop = await hoist.stop();
    return { label, dataDir: kind, readyMs: hoist.readyMs, reportedReadyMs: hoist.reportedReadyMs, processes, stop };
  } finally {
    await hoist?.stop();
  }
}

export const startup: Suite = {
  name: "startup",
  description: "cold start of `npm start` to the first 200 on /health/ready, and RSS once ready",
  async run(ctx) {
    const runs: Run[] = [];
    const dirs: string[] = [];
    try {
      for (let i = 1; i <= FRESH_RUNS; i++) {
        const dir = await tempDir("startup");
        dirs.push(dir);
        ctx.log(`fresh start ${i}/${FRESH_RUNS}…`);
        runs.push(await once(`fresh #${i}`, dir, "fresh"));
      }
      ctx.log("second start on an existing data directory…");
      runs.push(await once("existing dir", dirs[dirs.length - 1] as string, "existing"));
    } finally {
      for (const d of dirs) await removeDir(d);
    }

    const fresh = runs.filter((r) => r.dataDir === "fresh");
    const row = (r: Run) => [
      r.label,
      ms(r.readyMs),
      r.reportedReadyMs === undefined ? "–" : String(r.reportedReadyMs),
      mb(rssOf(r.processes, "node (Hoist)")),
      mb(rssOf(r.processes, "java (DynamoDB Local)")),
      mb(total(r.processes)),
      `${ms(r.stop.stopMs)}${r.stop.forced ? " (SIGKILL)" : ""}`,
    ];
    const med = (f: (r: Run) => number | undefined) => {
      const v = fresh.map(f).filter((x): x is number => x !== undefined);
      return v.length ? median(v) : undefined;
    };
    const summary: Table = {
      title: "startup — `npm start` (spawned detached, fresh temp HOIST_DATA_DIR) → first 200 on /health/ready",
      columns: ["run", "ready ms", "app says ms", "node RSS MiB", "java RSS MiB", "group RSS MiB", "SIGTERM→gone ms"],
      rows: [
        ...fresh.map(row),
        [
          `median of ${fresh.length} fresh`,
          ms(med((r) => r.readyMs) ?? Number.NaN),
          ms(med((r) => r.reportedReadyMs) ?? Number.NaN),
          mb(med((r) => rssOf(r.processes, "node (Hoist)"))),
          mb(med((r) => rssOf(r.processes, "java (DynamoDB Local)"))),
          mb(med((r) => total(r.processes))),
          ms(med((r) => r.stop.stopMs) ?? Number.NaN),
        ],
        ...runs.filter((r) => r.dataDir === "existing").map(row),
      ],
      notes: [
        "ready ms: spawn of `npm start` → first 200 (polled every 10 ms); includes npm, tsx and TypeScript loading.",
        'app says ms: main.ts\'s own "ready in N ms" (startRuntime only: DynamoDB Local + table + server).',
        "RSS: /proc/<pid>/status VmRSS at the moment of readiness.",
      ],
    };
    const first = runs[0];
    const breakdown: Table = {
      title: `startup — process group at readiness (${first?.label ?? "–"})`,
      columns: ["process", "comm", "RSS MiB"],
      align: ["l", "l", "r"],
      rows: [
        ...(first?.processes ?? []).map((p) => [p.role, p.comm, mb(p.rssKb)]),
        ["total", "", mb(total(first?.processes ?? []))],
      ],
    };
    return {
      tables: [summary, breakdown],
      data: {
        runs: runs.map((r) => ({ ...r, processes: r.processes.map(({ args: _args, ...p }) => p) })),
        medianFresh: {
          readyMs: med((r) => r.readyMs),
          reportedReadyMs: med((r) => r.reportedReadyMs),
          nodeRssKb: med((r) => rssOf(r.processes, "node (Hoist)")),
          javaRssKb: med((r) => rssOf(r.processes, "java (DynamoDB Local)")),
          groupRssKb: med((r) => total(r.processes)),
        },
      },
    };
  },
};
