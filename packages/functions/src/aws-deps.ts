import { ApiGatewayManagementApiClient } from "@aws-sdk/client-apigatewaymanagementapi";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { KMSClient } from "@aws-sdk/client-kms";
import { SchedulerClient } from "@aws-sdk/client-scheduler";
import { SQSClient } from "@aws-sdk/client-sqs";
import { ApiGatewayBroadcaster } from "@hoist/core/adapters/aws/apigw-broadcaster";
import { EventBridgeScheduler } from "@hoist/core/adapters/aws/eventbridge-scheduler";
import { KmsKeyVault } from "@hoist/core/adapters/aws/kms-key-vault";
import { SqsQueue } from "@hoist/core/adapters/aws/sqs-queue";
import { type JwtKeySet, parseKeySet } from "@hoist/core/auth/keys";
import { awsResource, loadConfig } from "@hoist/core/config";
import { ConfigError } from "@hoist/core/errors";
import { createLogger } from "@hoist/core/logger";
import type { Deps } from "@hoist/core/ports";
import { Ssh2Executor } from "@hoist/core/servers/ssh";
import { DynamoStore } from "@hoist/core/store/dynamo-store";
import { loadSecrets } from "./secrets.ts";

function once<T>(build: () => T): () => T {
  let value: T | undefined;
  return () => {
    value ??= build();
    return value;
  };
}

/**
 * The AWS adapters for one Lambda, built from the environment and secrets the
 * stacks give that function. Each adapter is built on first use, so a function
 * only needs the resources it actually touches (least privilege, stacks/).
 */
export async function awsDeps(): Promise<Deps> {
  const secrets = await loadSecrets(["JWT_PRIVATE_KEY", "GITHUB_CLIENT_SECRET", "GITHUB_WEBHOOK_SECRET"]);
  const config = loadConfig({
    ...process.env,
    HOIST_GITHUB_CLIENT_SECRET: secrets.GITHUB_CLIENT_SECRET,
    HOIST_GITHUB_WEBHOOK_SECRET: secrets.GITHUB_WEBHOOK_SECRET,
  });
  const jwtSecret = secrets.JWT_PRIVATE_KEY;
  const jwtKeys: JwtKeySet | undefined = jwtSecret
    ? await parseKeySet(jwtSecret, "SST secret JWT_PRIVATE_KEY")
    : undefined;

  const store = once(() => new DynamoStore(new DynamoDBClient({}), awsResource("HOIST_TABLE_NAME")));
  const queue = once(() => new SqsQueue({ queueUrl: awsResource("HOIST_QUEUE_URL"), client: new SQSClient({}) }));
  const scheduler = once(
    () =>
      new EventBridgeScheduler({
        groupName: awsResource("HOIST_SCHEDULE_GROUP"),
        roleArn: awsResource("HOIST_SCHEDULER_ROLE_ARN"),
        targetArn: awsResource("HOIST_AUTO_STOP_FUNCTION_ARN"),
        client: new SchedulerClient({}),
      }),
  );
  const broadcaster = once(() => {
    const endpoint = awsResource("HOIST_WS_ENDPOINT");
    return new ApiGatewayBroadcaster({ endpoint, client: new ApiGatewayManagementApiClient({ endpoint }) });
  });
  const keyVault = once(() => new KmsKeyVault({ keyId: awsResource("HOIST_KMS_KEY_ID"), client: new KMSClient({}) }));

  return {
    config,
    logger: createLogger(config.logLevel),
    get store() {
      return store();
    },
    get queue() {
      return queue();
    },
    get scheduler() {
      return scheduler();
    },
    get broadcaster() {
      return broadcaster();
    },
    executor: new Ssh2Executor(),
    get keyVault() {
      return keyVault();
    },
    get jwtKeys(): JwtKeySet {
      if (!jwtKeys) throw new ConfigError("The JWT_PRIVATE_KEY secret is not bound to this function");
      return jwtKeys;
    },
  };
}
