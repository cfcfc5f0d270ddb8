/**
 * The deploy engine's race-and-crash drain, full size: 4 apps on one
 * repository (one per branch), 200 signed pushes (150 commits + 50
 * redeliveries) 20 in flight, `npm start` SIGKILLed after 67 and started again
 * on the same data directory. Reports the seconds from the restart until the
 * last deployment ended, and the counts. Goal: nothing stuck, drain ≤ lease +
 * the runs themselves.
 */
import { runCrashScenario } from "../../packages/local/src/testing/crash-scenario.ts";
import type { Suite } from "./lib.ts";

const LEASE_SECONDS = 5;
const RUN_SECONDS = 0.5;

export const drain: Suite = {
  name: "drain",
  description: "200 pushes, SIGKILL a third through, restart: drain time and exactly-once counts",
  async run(ctx) {
    ctx.log("drain: 200 pushes over 4 apps, SIGKILL after 67, restart…");
    const report = await runCrashScenario({
      apps: 4,
      distinct: 150,
      redeliveries: 50,
      concurrency: 20,
      killAfter: 67,
      leaseSeconds: LEASE_SECONDS,
      runSeconds: RUN_SECONDS,
      drainTimeoutSeconds: 300,
    });
    return {
      tables: [
        {
          title: "Race and crash: restart → every deployment ended",
          columns: [
            "pushes",
            "acked",
            "deployments",
            "succeeded",
            "cancelled",
            "failed",
            "stuck",
            "drain s",
            "of which ingest s",
            "then tail s",
            "problems",
          ],
          rows: [
            [
              report.pushes,
              report.acknowledged,
              report.deployments,
              report.succeeded,
              report.cancelled,
              report.failed,
              report.stuck,
              report.drainSeconds.toFixed(1),
              report.ingestSeconds.toFixed(1),
              report.tailSeconds.toFixed(1),
              report.problems.length,
            ],
          ],
          notes: [
            `lease ${LEASE_SECONDS} s, each deploy command runs ${RUN_SECONDS} s; failed = runs the kill interrupted (stranded, failed at takeover)`,
            "drain = from the restarted runtime ready to the last deployment ended: the remaining pushes are sent meanwhile (ingest), then the tail runs each app's newest commit",
            ...report.problems.slice(0, 10).map((p) => `problem: ${p}`),
          ],
        },
      ],
      data: { ...report, leaseSeconds: LEASE_SECONDS, runSeconds: RUN_SECONDS },
    };
  },
};
