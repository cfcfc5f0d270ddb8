import { Duration } from "aws-cdk-lib";
import { SqsEventSource } from "aws-cdk-lib/aws-lambda-event-sources";
import { type StackContext, use } from "sst/constructs";
import { DeployQueue } from "../infra/deploy-queue.ts";
import { allowDecrypt, allowSendMessage, allowTableReadWrite } from "../infra/grants.ts";
import { Data } from "./Data.ts";
import { hoistFunction } from "./function.ts";
import { Realtime } from "./Realtime.ts";
import { Schedules } from "./Schedules.ts";

/** Lambda's maximum: a deploy streams SSH output for up to this long. */
export const WORKER_TIMEOUT_SECONDS = 900;
/** Above the worker timeout (HOIST_QUEUE_VISIBILITY_SECONDS's default). */
export const QUEUE_VISIBILITY_SECONDS = 960;
/** Receives before the DLQ (HOIST_QUEUE_MAX_ATTEMPTS's default). */
export const MAX_RECEIVE_COUNT = 5;

/** The deploy queue, its DLQ, and the worker that consumes it with partial batch failures. */
export function Jobs({ stack }: StackContext) {
  const { table, key } = use(Data);
  const realtime = use(Realtime);
  const { scheduling, autoStopArn, deployQueueName } = use(Schedules);

  const { queue, deadLetterQueue } = new DeployQueue(stack, "DeployQueue", {
    visibilityTimeout: Duration.seconds(QUEUE_VISIBILITY_SECONDS),
    maxReceiveCount: MAX_RECEIVE_COUNT,
    queueName: deployQueueName,
  });

  const worker = hoistFunction(stack, "DeployWorker", {
    description: "runs deploys and app start/stop over SSH",
    handler: "packages/functions/src/deploy-worker.handler",
    timeout: `${WORKER_TIMEOUT_SECONDS} seconds`,
    memorySize: "1024 MB",
    environment: {
      HOIST_TABLE_NAME: table.tableName,
      HOIST_KMS_KEY_ID: key.keyArn,
      HOIST_WS_ENDPOINT: realtime.endpoint,
      // A finished deployment wakes the next queued one; a started app gets its auto-stop schedule.
      HOIST_QUEUE_URL: queue.queueUrl,
      HOIST_SCHEDULE_GROUP: scheduling.group.scheduleGroupName,
      HOIST_SCHEDULER_ROLE_ARN: scheduling.role.roleArn,
      HOIST_AUTO_STOP_FUNCTION_ARN: autoStopArn,
    },
  });
  allowTableReadWrite(worker, table);
  allowDecrypt(worker, key);
  allowSendMessage(worker, queue);
  scheduling.allowManageSchedules(worker);
  realtime.allowPost(worker);
  // A deploy runs for minutes: one message per invocation gives each the full
  // timeout; a failed one is reported alone and retried.
  worker.addEventSource(new SqsEventSource(queue, { batchSize: 1, reportBatchItemFailures: true }));

  stack.addOutputs({ DeployQueueUrl: queue.queueUrl, DeployDeadLetterQueueUrl: deadLetterQueue.queueUrl });
  return { queue, deadLetterQueue, worker };
}
