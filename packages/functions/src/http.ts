import { createApp } from "@hoist/core/http/app";
import { handle } from "hono/aws-lambda";
import { awsDeps } from "./aws-deps.ts";
import { lazyEventBridgeScheduler, lazyKmsKeyVault, lazySqsQueue } from "./ports/lazy.ts";
import { lazySsh2Executor } from "./ports/lazy-executor.ts";

const deps = await awsDeps({
  queue: lazySqsQueue,
  scheduler: lazyEventBridgeScheduler,
  keyVault: lazyKmsKeyVault,
  // SSH only for the server status check: the ssh2 executor is loaded on first use.
  executor: lazySsh2Executor,
});
const app = handle(createApp(deps));

/** The Hono app; the requests it counted for `GET /api/usage` are written before Lambda may freeze the instance. */
export const handler: typeof app = async (event, context) => {
  try {
    return await app(event, context);
  } finally {
    await deps.usage.flush();
  }
};
