import { createScheduledEventHandler } from "@hoist/core/jobs/auto-stop";
import { scheduledHandlers } from "@hoist/core/jobs/handlers";
import { awsDeps } from "./aws-deps.ts";
import { ssh2Executor } from "./ports/executor.ts";
import { kmsKeyVault } from "./ports/key-vault.ts";
import { sqsQueue } from "./ports/queue.ts";
import { eventBridgeScheduler } from "./ports/scheduler.ts";

/** Invoked by EventBridge Scheduler with the schedule's Input as the event (auto-stop, status sweep). */
export const handler = createScheduledEventHandler(
  await awsDeps({ queue: sqsQueue, scheduler: eventBridgeScheduler, keyVault: kmsKeyVault, executor: ssh2Executor }),
  scheduledHandlers,
);
