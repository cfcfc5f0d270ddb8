/**
 * Latency and throughput of the embedded runtime's health endpoints:
 * /health/ready (one DynamoDB GetItem on DynamoDB Local) and /health (no I/O).
 */
import {
  type DriveResult,
  drive,
  driveCells,
  type HoistProcess,
  mb,
  removeDir,
  type Suite,
  startHoist,
} from "./lib.ts";

const ENDPOINTS = ["/health/ready", "/health"];
const CONCURRENCY = [1, 16];
const REQUESTS = 2000;
const WARMUP = 500;

export const http: Suite = {
  name: "http",
  description: "GET /health/ready and /health on `npm start`: req/s, p50/p95/p99/max at concurrency 1 and 16",
  async run(ctx) {
    let hoist: HoistProcess | undefined;
    const results: { path: string; result: DriveResult }[] = [];
    const rss: Record<string, number | undefined> = {};
    try {
      ctx.log("starting `npm start`…");
      hoist = await startHoist();
      const node = () => hoist?.processes().find((p) => p.role === "node (Hoist)")?.rssKb;
      const java = () => hoist?.processes().find((p) => p.role === "java (DynamoDB Local)")?.rssKb;
      rss.nodeReady = node();
      rss.javaReady = java();
      for (const path of ENDPOINTS) {
        ctx.log(`warm-up ${path} (${WARMUP} requests, concurrency 4)…`);
        await drive({ url: `${hoist.url}${path}`, requests: WARMUP, concurrency: 4 });
      }
      for (const path of ENDPOINTS) {
        for (const concurrency of CONCURRENCY) {
          ctx.log(`${path}: ${REQUESTS} requests at concurrency ${concurrency}…`);
          results.push({ path, result: await drive({ url: `${hoist.url}${path}`, requests: REQUESTS, concurrency }) });
        }
      }
      rss.nodeAfter = node();
      rss.javaAfter = java();
    } finally {
      if (hoist) {
        await hoist.stop();
        await removeDir(hoist.dataDir);
      }
    }

    const problems: string[] = [];
    for (const { path, result } of results) {
      for (const [status, n] of Object.entries(result.unexpected))
        problems.push(`${path} c=${result.concurrency}: ${n}× HTTP ${status}`);
      for (const [message, n] of Object.entries(result.errors))
        problems.push(`${path} c=${result.concurrency}: ${n}× ${message}`);
    }
    return {
      tables: [
        {
          title: `http — embedded runtime (\`npm start\`), ${REQUESTS} requests per row after ${WARMUP} warm-up, fetch keep-alive`,
          columns: ["endpoint", "conc", "ok", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"],
          rows: results.map(({ path, result: r }) => [path, ...driveCells(r)]),
          notes: [
            `Hoist node RSS ${mb(rss.nodeReady)} → ${mb(rss.nodeAfter)} MiB, java ${mb(rss.javaReady)} → ${mb(rss.javaAfter)} MiB (ready → after the load).`,
            "Client, server, DynamoDB Local share this machine's cores; the server logs one JSON line per request (default level info).",
            ...(problems.length ? problems.map((p) => `! ${p}`) : []),
          ],
        },
      ],
      data: {
        requests: REQUESTS,
        warmup: WARMUP,
        rows: results.map(({ path, result: { latencies: _l, ...r } }) => ({ path, ...r })),
        rssKb: rss,
      },
    };
  },
};
