import { createScheduledEventHandler } from "@hoist/core/jobs/auto-stop";
import { scheduledHandlers } from "@hoist/core/jobs/handlers";
import { awsDeps } from "./aws-deps.ts";
import { lazyEventBridgeScheduler, lazyKmsKeyVault, lazySqsQueue } from "./ports/lazy.ts";
import { lazySsh2Executor } from "./ports/lazy-executor.ts";

const deps = await awsDeps({
  queue: lazySqsQueue,
  scheduler: lazyEventBridgeScheduler,
  keyVault: lazyKmsKeyVault,
  executor: lazySsh2Executor,
});

/** Invoked by EventBridge Scheduler with the schedule's Input as the event (auto-stop, status sweep). */
export const handler = createScheduledEventHandler(deps, scheduledHandlers);
