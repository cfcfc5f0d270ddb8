import { jobHandlers } from "@hoist/core/jobs/handlers";
import { createJobWorker } from "@hoist/core/jobs/worker";
import { awsDeps } from "./aws-deps.ts";
import { ssh2Executor } from "./ports/executor.ts";
import { kmsKeyVault } from "./ports/key-vault.ts";
import { sqsQueue } from "./ports/queue.ts";
import { eventBridgeScheduler } from "./ports/scheduler.ts";

// Deploys, and app start/stop jobs (which schedule the auto-stop), over SSH.
export const handler = createJobWorker(
  await awsDeps({ queue: sqsQueue, scheduler: eventBridgeScheduler, keyVault: kmsKeyVault, executor: ssh2Executor }),
  jobHandlers,
);
