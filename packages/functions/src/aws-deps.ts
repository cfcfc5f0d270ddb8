import { ApiGatewayManagementApiClient } from "@aws-sdk/client-apigatewaymanagementapi";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { KMSClient } from "@aws-sdk/client-kms";
import { SchedulerClient } from "@aws-sdk/client-scheduler";
import { SQSClient } from "@aws-sdk/client-sqs";
import { ApiGatewayBroadcaster } from "@hoist/core/adapters/aws/apigw-broadcaster";
import { EventBridgeScheduler } from "@hoist/core/adapters/aws/eventbridge-scheduler";
import { KmsKeyVault } from "@hoist/core/adapters/aws/kms-key-vault";
import { SqsQueue } from "@hoist/core/adapters/aws/sqs-queue";
import { loadAwsResources, loadConfig } from "@hoist/core/config";
import { createLogger } from "@hoist/core/logger";
import type { Deps } from "@hoist/core/ports";
import { DynamoStore } from "@hoist/core/store/dynamo-store";
import { Config as Secrets } from "sst/node/config";

/**
 * The AWS adapters, built once per Lambda cold start from the environment the
 * stacks set and the SST secrets bound to the function.
 */
export function awsDeps(): Deps {
  const secrets = Secrets as unknown as Record<string, string | undefined>;
  const config = loadConfig({
    ...process.env,
    HOIST_GITHUB_CLIENT_SECRET: secrets.GITHUB_CLIENT_SECRET,
    HOIST_GITHUB_WEBHOOK_SECRET: secrets.GITHUB_WEBHOOK_SECRET,
  });
  const aws = loadAwsResources();
  return {
    config,
    logger: createLogger(config.logLevel),
    store: new DynamoStore(new DynamoDBClient({}), aws.tableName),
    queue: new SqsQueue({ queueUrl: aws.queueUrl, client: new SQSClient({}) }),
    scheduler: new EventBridgeScheduler({
      groupName: aws.scheduleGroup,
      roleArn: aws.schedulerRoleArn,
      targetArn: aws.autoStopFunctionArn,
      client: new SchedulerClient({}),
    }),
    broadcaster: new ApiGatewayBroadcaster({
      endpoint: aws.wsEndpoint,
      client: new ApiGatewayManagementApiClient({ endpoint: aws.wsEndpoint }),
    }),
    keyVault: new KmsKeyVault({ keyId: aws.kmsKeyId, client: new KMSClient({}) }),
  };
}
