import { jobHandlers } from "@hoist/core/jobs/handlers";
import { createJobWorker } from "@hoist/core/jobs/worker";
import { awsDeps } from "./aws-deps.ts";
import { lazyEventBridgeScheduler, lazyKmsKeyVault, lazySqsQueue } from "./ports/lazy.ts";
import { lazySsh2Executor } from "./ports/lazy-executor.ts";

const deps = await awsDeps({
  queue: lazySqsQueue,
  scheduler: lazyEventBridgeScheduler,
  keyVault: lazyKmsKeyVault,
  executor: lazySsh2Executor,
});

// Deploys, and app start/stop jobs (which schedule the auto-stop), over SSH (ssh2 is loaded by the first job that connects).
export const handler = createJobWorker(deps, jobHandlers);
