import { Api as HttpApi, type StackContext, use } from "sst/constructs";
import { allowEncryptDecrypt, allowReadSecrets, allowSendMessage, allowTableReadWrite } from "../infra/grants.ts";
import { suppressRouteAuthorization } from "../infra/nag.ts";
import { Data } from "./Data.ts";
import { hoistFunction } from "./function.ts";
import { Jobs } from "./Jobs.ts";
import { Realtime } from "./Realtime.ts";
import { Schedules } from "./Schedules.ts";

/** The HTTP API: every request goes to one Lambda running the Hono app. */
export function Api({ stack }: StackContext) {
  const { table, key, secrets } = use(Data);
  const realtime = use(Realtime);
  const { scheduling, autoStopArn } = use(Schedules);
  const { queue } = use(Jobs);

  const http = hoistFunction(stack, "Http", {
    description: "HTTP API (Hono)",
    handler: "packages/functions/src/http.handler",
    // API Gateway gives up after 30 s.
    timeout: "29 seconds",
    memorySize: "1024 MB",
    environment: {
      HOIST_TABLE_NAME: table.tableName,
      HOIST_QUEUE_URL: queue.queueUrl,
      HOIST_KMS_KEY_ID: key.keyArn,
      HOIST_SCHEDULE_GROUP: scheduling.group.scheduleGroupName,
      HOIST_SCHEDULER_ROLE_ARN: scheduling.role.roleArn,
      HOIST_AUTO_STOP_FUNCTION_ARN: autoStopArn,
      HOIST_WS_ENDPOINT: realtime.endpoint,
      // The live log page connects its browser here (the embedded runtime serves /ws on the same origin).
      HOIST_PUBLIC_WS_URL: realtime.url,
    },
    bind: [secrets.jwtPrivateKey, secrets.githubClientSecret, secrets.githubWebhookSecret],
    // Written into the environment at deploy (SST's prefetcher): no SSM round trip, and no SSM throttling when
    // many instances start at once. A changed secret takes effect with the next `sst deploy`.
    prefetchSecrets: true,
  });
  // OpenID Connect's secrets are optional, which a prefetched binding cannot be: read on first use instead.
  allowReadSecrets(http, [secrets.oidcIssuer, secrets.oidcClientId, secrets.oidcClientSecret]);
  allowTableReadWrite(http, table);
  allowSendMessage(http, queue);
  allowEncryptDecrypt(http, key);
  scheduling.allowManageSchedules(http);
  realtime.allowPost(http);

  const api = new HttpApi(stack, "Api", {
    // The app answers CORS itself (HOIST_CORS_ORIGINS).
    cors: false,
    accessLog: { retention: "one_month" },
    routes: { $default: http },
  });

  suppressRouteAuthorization(
    api,
    "The Hono app authenticates each request itself (API.md): a JWT bearer token on /api routes, the HMAC " +
      "signature on GitHub webhooks; the public routes (health, register/login/refresh, GitHub OAuth) need none.",
  );

  stack.addOutputs({ ApiUrl: api.url });
  return { api, http };
}
