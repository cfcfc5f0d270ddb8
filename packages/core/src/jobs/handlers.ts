import { autoStop, runAppJob } from "../apps/lifecycle.ts";
import type { Deps, ScheduledEvent } from "../ports.ts";
import { sweepServers } from "../servers/status.ts";
import type { JobHandlers } from "./worker.ts";

/**
 * Job handlers by type. The deploy handler is filled in by the deployments
 * module; until a deployment exists for the id there is nothing to do, which
 * is also the idempotent answer to a redelivered message.
 */
export const jobHandlers: JobHandlers = {
  deploy: async (job, deps) => {
    deps.logger.warn("deploy job for unknown deployment; nothing to do", { deploymentId: job.deploymentId });
  },
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
