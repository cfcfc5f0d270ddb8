import { ArnFormat } from "aws-cdk-lib";
import { type StackContext, use } from "sst/constructs";
import { allowDecrypt, allowSendMessage, allowTableReadWrite } from "../infra/grants.ts";
import { Scheduling } from "../infra/scheduling.ts";
import { Data } from "./Data.ts";
import { hoistFunction } from "./function.ts";
import { Realtime } from "./Realtime.ts";

/**
 * EventBridge Scheduler: the stage's schedule group, the role schedules run
 * as, and the auto-stop Lambda they invoke (one one-time schedule per running app).
 */
export function Schedules({ app, stack }: StackContext) {
  const { table, key } = use(Data);
  const realtime = use(Realtime);

  const scheduling = new Scheduling(stack, "Scheduling", { groupName: app.logicalPrefixedName("schedules") });

  // auto-stop schedules (re)creates schedules that target itself. Its ARN is
  // built from a fixed name: a reference to its own Arn attribute would be a cycle.
  const functionName = app.logicalPrefixedName("auto-stop");
  const autoStopArn = stack.formatArn({
    service: "lambda",
    resource: "function",
    resourceName: functionName,
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });
  // The deploy queue (created by Jobs, which comes later) by its fixed name: an auto-stop runs the
  // stop through the app's worker, which queues what comes next and a watchdog.
  const deployQueueName = app.logicalPrefixedName("deploy");
  const deployQueue = {
    queueName: deployQueueName,
    queueArn: stack.formatArn({ service: "sqs", resource: deployQueueName, arnFormat: ArnFormat.NO_RESOURCE_NAME }),
    queueUrl: `https://sqs.${stack.region}.${stack.urlSuffix}/${stack.account}/${deployQueueName}`,
  };
  const autoStop = hoistFunction(stack, "AutoStop", {
    description: "stops an app when its schedule fires",
    handler: "packages/functions/src/auto-stop.handler",
    functionName,
    timeout: "300 seconds",
    memorySize: "512 MB",
    environment: {
      HOIST_TABLE_NAME: table.tableName,
      HOIST_KMS_KEY_ID: key.keyArn,
      HOIST_WS_ENDPOINT: realtime.endpoint,
      HOIST_QUEUE_URL: deployQueue.queueUrl,
      HOIST_SCHEDULE_GROUP: scheduling.group.scheduleGroupName,
      HOIST_SCHEDULER_ROLE_ARN: scheduling.role.roleArn,
      HOIST_AUTO_STOP_FUNCTION_ARN: autoStopArn,
    },
  });
  allowTableReadWrite(autoStop, table);
  allowDecrypt(autoStop, key);
  realtime.allowPost(autoStop);
  allowSendMessage(autoStop, deployQueue);
  scheduling.allowManageSchedules(autoStop);
  scheduling.allowInvoke(autoStop);
  // The periodic server status sweep runs in the same scheduled-events function.
  scheduling.addRecurring("StatusSweep", { fn: autoStop, minutes: 5, input: { type: "status-sweep" } });

  stack.addOutputs({ ScheduleGroup: scheduling.group.scheduleGroupName });
  return { scheduling, autoStop, autoStopArn, deployQueueName };
}
