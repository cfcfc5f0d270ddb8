import { hkdfSync } from "node:crypto";
import { ApiGatewayManagementApiClient } from "@aws-sdk/client-apigatewaymanagementapi";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { ApiGatewayBroadcaster } from "@hoist/core/adapters/aws/apigw-broadcaster";
import { type JwtKeySet, parseKeySet } from "@hoist/core/auth/keys";
import { awsResource, loadConfig } from "@hoist/core/config";
import { ConfigError } from "@hoist/core/errors";
import { createLogger } from "@hoist/core/logger";
import type { Deps, JobQueue, KeyVault, Scheduler } from "@hoist/core/ports";
import type { Executor } from "@hoist/core/servers/ssh";
import { DynamoStore } from "@hoist/core/store/dynamo-store";
import { UsageMeter } from "@hoist/core/usage/meter";
import { loadSecrets } from "./secrets.ts";

/** The ports a function uses beyond the table and the WebSocket API; each entrypoint passes only its own. */
export interface PortBuilders {
  queue?: () => JobQueue;
  scheduler?: () => Scheduler;
  keyVault?: () => KeyVault;
  executor?: () => Executor;
}

function lazy<T>(name: string, build: (() => T) | undefined): () => T {
  let value: T | undefined;
  return () => {
    if (!build) throw new ConfigError(`The ${name} port is not available in this function`);
    value ??= build();
    return value;
  };
}

/**
 * The AWS adapters for one Lambda, from the environment and secrets the
 * stacks give that function. Each entrypoint names the ports it uses, so its
 * bundle carries only those clients (the ws function has no SSH, KMS, SQS or
 * Scheduler code), and each adapter is built on first use.
 */
export async function awsDeps(ports: PortBuilders = {}): Promise<Deps> {
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

  // List cursors are signed with a key every instance of the stage shares: derived from the JWT signing secret.
  const cursorKey = jwtSecret ? new Uint8Array(hkdfSync("sha256", jwtSecret, "hoist", "list-cursors", 32)) : undefined;
  const store = lazy(
    "store",
    () => new DynamoStore(new DynamoDBClient({}), awsResource("HOIST_TABLE_NAME"), { cursorKey }),
  );
  const broadcaster = lazy("broadcaster", () => {
    const endpoint = awsResource("HOIST_WS_ENDPOINT");
    return new ApiGatewayBroadcaster({ endpoint, client: new ApiGatewayManagementApiClient({ endpoint }) });
  });
  const queue = lazy("queue", ports.queue);
  const scheduler = lazy("scheduler", ports.scheduler);
  const keyVault = lazy("keyVault", ports.keyVault);
  const executor = lazy("executor", ports.executor);
  const logger = createLogger(config.logLevel);
  // Written as soon as counted, alongside the request; the http handler awaits it before Lambda may freeze the instance.
  const usage = lazy("usage", () => new UsageMeter({ store: store(), logger, flushOnCount: true }));

  return {
    config,
    logger,
    get store() {
      return store();
    },
    get broadcaster() {
      return broadcaster();
    },
    get queue() {
      return queue();
    },
    get scheduler() {
      return scheduler();
    },
    get keyVault() {
      return keyVault();
    },
    get executor() {
      return executor();
    },
    get usage() {
      return usage();
    },
    get jwtKeys(): JwtKeySet {
      if (!jwtKeys) throw new ConfigError("The JWT_PRIVATE_KEY secret is not bound to this function");
      return jwtKeys;
    },
  };
}
