import type { TableQueue } from "@hoist/core/adapters/local/table-queue";
import type { TableScheduler } from "@hoist/core/adapters/local/table-scheduler";
import { wakeStaleQueues } from "@hoist/core/jobs/app-worker";
import { createScheduledEventHandler } from "@hoist/core/jobs/auto-stop";
import { jobHandlers, scheduledHandlers } from "@hoist/core/jobs/handlers";
import { createJobWorker, type JobHandlers } from "@hoist/core/jobs/worker";
import type { Deps } from "@hoist/core/ports";
import { closeOutRunningApps } from "@hoist/core/usage/close-out";
import type { SQSRecord } from "aws-lambda";

const SWEEP = "status-sweep";

/**
 * The embedded stand-ins for the SQS-triggered worker and EventBridge
 * Scheduler: the same worker handler, fed one SQS-shaped record per job, and
 * the same scheduled-event handler. The status sweep, a rate schedule on AWS,
 * re-arms itself here after each run. Returns a stop function.
 */
export async function startLocalWorkers(
  deps: Deps,
  queue: TableQueue,
  scheduler: TableScheduler,
): Promise<() => Promise<void>> {
  await consumeJobs(deps, queue, jobHandlers);

  const every = deps.config.ssh.sweepIntervalSeconds;
  const rearm = () => scheduler.schedule(SWEEP, new Date(Date.now() + every * 1000), { type: "status-sweep" });
  const fire = createScheduledEventHandler(deps, {
    ...scheduledHandlers,
    "status-sweep": async (event, d) => {
      try {
        await scheduledHandlers["status-sweep"](event, d);
      } finally {
        if (every > 0) await rearm();
      }
    },
  });
  await scheduler.start(fire);
  if (every > 0) await rearm();
  else await scheduler.cancel(SWEEP);
  // Deployments queued by a process that died before sending their job run now, not at the next sweep.
  await wakeStaleQueues(deps, 0);
  // Apps that kept running while the runtime was down: their minutes so far are booked now.
  await closeOutRunningApps(deps);

  return async () => {
    await Promise.all([queue.stop(), scheduler.stop()]);
  };
}

/**
 * Feeds each job of `queue` to the handler the SQS-triggered worker Lambda
 * runs, as a one-record batch: parsed, dispatched and failed (retried, then
 * dead-lettered) exactly as on AWS.
 */
export async function consumeJobs(deps: Deps, queue: TableQueue, handlers: JobHandlers): Promise<void> {
  const worker = createJobWorker(deps, handlers);
  await queue.start(async (message) => {
    const result = await worker({ Records: [sqsRecord(message.id, message.body, message.attempt)] });
    if (result.batchItemFailures.length > 0) throw new Error("Job failed; it will be retried");
  });
}

function sqsRecord(messageId: string, body: string, attempt: number): SQSRecord {
  const now = String(Date.now());
  return {
    messageId,
    receiptHandle: messageId,
    body,
    attributes: {
      ApproximateReceiveCount: String(attempt),
      SentTimestamp: now,
      SenderId: "hoist-local",
      ApproximateFirstReceiveTimestamp: now,
    },
    messageAttributes: {},
    md5OfBody: "",
    eventSource: "aws:sqs",
    eventSourceARN: "arn:aws:sqs:local:000000000000:deploy",
    awsRegion: "local",
  };
}
