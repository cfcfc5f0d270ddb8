import { createApp } from "@hoist/core/http/app";
import { handle } from "hono/aws-lambda";
import { awsDeps } from "./aws-deps.ts";
import { ssh2Executor } from "./ports/executor.ts";
import { kmsKeyVault } from "./ports/key-vault.ts";
import { sqsQueue } from "./ports/queue.ts";
import { eventBridgeScheduler } from "./ports/scheduler.ts";

export const handler = handle(
  createApp(
    await awsDeps({ queue: sqsQueue, scheduler: eventBridgeScheduler, keyVault: kmsKeyVault, executor: ssh2Executor }),
  ),
);
