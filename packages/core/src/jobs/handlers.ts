import { autoStop, runAppJob } from "../apps/lifecycle.ts";
import { runDeploymentJob } from "../deployments/worker.ts";
import type { Deps, ScheduledEvent } from "../ports.ts";
import { sweepServers } from "../servers/status.ts";
import type { JobHandlers } from "./worker.ts";

/** Job handlers by type; each is idempotent (deliveries are at least once). */
export const jobHandlers: JobHandlers = {
  deploy: runDeploymentJob,
  "app-start": runAppJob,
  "app-stop": runAppJob,
};

type ScheduledHandlers = {
  [T in ScheduledEvent["type"]]: (event: Extract<ScheduledEvent, { type: T }>, deps: Deps) => Promise<void>;
};

/** What EventBridge Scheduler (or the embedded scheduler) fires. */
export const scheduledHandlers: ScheduledHandlers = {
  "auto-stop": autoStop,
  "status-sweep": async (_event, deps) => {
    const result = await sweepServers(deps);
    deps.logger.info("status sweep", result);
  },
};
