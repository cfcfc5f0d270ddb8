import { createScheduledEventHandler } from "@hoist/core/jobs/auto-stop";
import { scheduledHandlers } from "@hoist/core/jobs/handlers";
import { awsDeps } from "./aws-deps.ts";

/** Invoked by EventBridge Scheduler with the schedule's Input as the event. */
export const handler = createScheduledEventHandler(await awsDeps(), scheduledHandlers);
