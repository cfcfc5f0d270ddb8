import { createScheduledEventHandler } from "@hoist/core/jobs/auto-stop";
import { scheduledHandlers } from "@hoist/core/jobs/handlers";
import { awsDeps } from "./aws-deps.ts";
import { everyPort } from "./ports/lazy.ts";

const deps = await awsDeps(everyPort());

/** Invoked by EventBridge Scheduler with the schedule's Input as the event (auto-stop, status sweep). */
export const handler = createScheduledEventHandler(deps, scheduledHandlers);
