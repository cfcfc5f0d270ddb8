import { autoStop } from "../apps/lifecycle.ts";
import { execJob } from "../operate/exec.ts";
import { appLogsTailJob } from "../operate/tail.ts";
import { restartLapsedTails } from "../operate/tail-lease.ts";
import type { Deps, ScheduledEvent } from "../ports.ts";
import { sweepServers } from "../servers/status.ts";
import { closeOutRunningApps } from "../usage/close-out.ts";
import { appJob, appWakeJob, deployJob, wakeApp, wakeStaleQueues } from "./app-worker.ts";
import type { JobHandlers } from "./worker.ts";

/** Job handlers by type; each is idempotent (deliveries are at least once). */
export const jobHandlers: JobHandlers = {
  deploy: deployJob,
  "app-start": appJob,
  "app-stop": appJob,
  "app-wake": appWakeJob,
  "app-logs-tail": appLogsTailJob,
  exec: execJob,
};

type ScheduledHandlers = {
  [T in ScheduledEvent["type"]]: (event: Extract<ScheduledEvent, { type: T }>, deps: Deps) => Promise<void>;
};

/** What EventBridge Scheduler (or the embedded scheduler) fires. */
export const scheduledHandlers: ScheduledHandlers = {
  "auto-stop": async (event, deps) => {
    if (await autoStop(event, deps)) await wakeApp(deps, event.ownerId, event.appId);
  },
  "status-sweep": async (_event, deps) => {
    await wakeStaleQueues(deps, 60_000);
    // Running minutes booked as they pass (whole minutes), not only when the app stops.
    // App-log tails whose job died (a crashed worker) restart for the subscribers still listening.
    const [result, metered, tails] = await Promise.all([
      sweepServers(deps),
      closeOutRunningApps(deps),
      restartLapsedTails(deps),
    ]);
    deps.logger.info("status sweep", { ...result, metered, tailsRestarted: tails });
  },
};
