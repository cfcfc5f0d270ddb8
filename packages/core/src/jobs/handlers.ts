import type { Deps } from "../ports.ts";
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
};

/** Scheduled event handlers by type; the apps module supplies auto-stop. */
export const scheduledHandlers = {
  "auto-stop": async (event: { appId: string }, deps: Deps) => {
    deps.logger.warn("auto-stop for unknown app; nothing to do", { appId: event.appId });
  },
};
