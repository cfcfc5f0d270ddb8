import { SchedulerClient } from "@aws-sdk/client-scheduler";
import { EventBridgeScheduler } from "@hoist/core/adapters/aws/eventbridge-scheduler";
import { awsResource } from "@hoist/core/config";

export const eventBridgeScheduler = () =>
  new EventBridgeScheduler({
    groupName: awsResource("HOIST_SCHEDULE_GROUP"),
    roleArn: awsResource("HOIST_SCHEDULER_ROLE_ARN"),
    targetArn: awsResource("HOIST_AUTO_STOP_FUNCTION_ARN"),
    client: new SchedulerClient({}),
  });
