import { ArnFormat } from "aws-cdk-lib";
import type { IGrantable } from "aws-cdk-lib/aws-iam";
import type { IConstruct } from "constructs";
import { type StackContext, use, WebSocketApi } from "sst/constructs";
import { allowSendMessage, allowTableReadWrite } from "../infra/grants.ts";
import { suppressRouteAuthorization, suppressScopedWildcard } from "../infra/nag.ts";
import { Data } from "./Data.ts";
import { hoistFunction } from "./function.ts";

/**
 * The WebSocket API: `$connect`, `$disconnect` and `$default` all go to one
 * Lambda. Other functions push to connections through `allowPost` and the
 * management endpoint `endpoint`.
 */
export function Realtime({ app, stack }: StackContext) {
  const { table, secrets } = use(Data);
  // The deploy queue (created by Jobs, which comes later and uses this stack) by its fixed name, as
  // Schedules addresses it: an `app-logs:` subscribe starts the app's log tail job, an `exec` queues its run.
  const queueName = app.logicalPrefixedName("deploy");
  const deployQueue = {
    queueArn: stack.formatArn({ service: "sqs", resource: queueName, arnFormat: ArnFormat.NO_RESOURCE_NAME }),
    queueUrl: `https://sqs.${stack.region}.${stack.urlSuffix}/${stack.account}/${queueName}`,
  };

  const ws = hoistFunction(stack, "Ws", {
    description: "WebSocket connect, disconnect, subscribe and exec",
    handler: "packages/functions/src/ws.handler",
    timeout: "10 seconds",
    memorySize: "512 MB",
    environment: { HOIST_TABLE_NAME: table.tableName, HOIST_QUEUE_URL: deployQueue.queueUrl },
    // $connect verifies the user's token; the key is written into the environment at deploy (stacks/Api.ts).
    bind: [secrets.jwtPrivateKey],
    prefetchSecrets: true,
  });
  allowTableReadWrite(ws, table);
  allowSendMessage(ws, deployQueue);

  // The construct also lets its route functions (ws) call @connections on this API.
  const api = new WebSocketApi(stack, "Realtime", {
    routes: { $connect: ws, $disconnect: ws, $default: ws },
    accessLog: { retention: "one_month" },
  });
  suppressScopedWildcard(ws, "connections");
  for (const key of ["$connect", "$disconnect", "$default"]) {
    suppressRouteAuthorization(
      api.getRoute(key) as IConstruct,
      "The ws Lambda authenticates on $connect itself (the JWT in the connect URL's query, verified with " +
        "JWT_PRIVATE_KEY) and rejects the upgrade without it; later messages only reach authenticated connections.",
    );
  }
  const stage = api.cdk.webSocketStage;
  // https://{apiId}.execute-api.{region}.amazonaws.com/{stage}
  const endpoint = stage.callbackUrl;
  ws.addEnvironment("HOIST_WS_ENDPOINT", endpoint);

  stack.addOutputs({ WebSocketUrl: api.url });
  return {
    api,
    endpoint,
    /** `wss://…/<stage>`: where browsers connect. */
    url: api.url,
    /** `execute-api:ManageConnections` on this API's stage's `@connections/*`, nothing else. */
    allowPost: (grantee: IGrantable) => {
      stage.grantManagementApiAccess(grantee);
      suppressScopedWildcard(grantee, "connections");
    },
  };
}
