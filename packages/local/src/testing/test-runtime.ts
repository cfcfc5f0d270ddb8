import { loadConfig } from "@hoist/core/config";
import { createLogger } from "@hoist/core/logger";
import { UNLIMITED_PLANS_FILE } from "@hoist/core/testing/plans";
import { type Runtime, startRuntime } from "../runtime.ts";

/**
 * The embedded runtime as the tests run it: a free port, a fresh table named
 * after `name` on the shared DynamoDB Local, no rate limits, no periodic
 * sweep, unlimited plans, silent logs. `env` adds or overrides variables.
 */
export function startTestRuntime(opts: {
  name: string;
  dataDir: string;
  dynamoEndpoint: string;
  env?: Record<string, string>;
}): Promise<Runtime> {
  return startRuntime(
    loadConfig({
      PORT: "0",
      HOIST_DATA_DIR: opts.dataDir,
      HOIST_DYNAMODB_ENDPOINT: opts.dynamoEndpoint,
      HOIST_TABLE_NAME: `${opts.name}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 6)}`,
      HOIST_RATE_LIMIT_AUTH: "0",
      HOIST_RATE_LIMIT_API: "0",
      HOIST_STATUS_SWEEP_SECONDS: "0",
      HOIST_PLANS_FILE: UNLIMITED_PLANS_FILE,
      HOIST_LOG_LEVEL: "silent",
      ...opts.env,
    }),
    createLogger("silent"),
  );
}
