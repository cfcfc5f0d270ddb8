import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ApiGatewayBroadcaster } from "../adapters/aws/apigw-broadcaster.ts";
import { withBindingCache } from "../adapters/local/binding-cache.ts";
import { FileKeyVault } from "../adapters/local/file-key-vault.ts";
import { TableQueue } from "../adapters/local/table-queue.ts";
import { TableScheduler } from "../adapters/local/table-scheduler.ts";
import { fileKeySet } from "../auth/keys.ts";
import { type Config, loadConfig } from "../config.ts";
import { createLogger } from "../logger.ts";
import type { Deps } from "../ports.ts";
import { Ssh2Executor } from "../servers/ssh.ts";
import { UsageMeter } from "../usage/meter.ts";
import { testTable } from "./dynamo.ts";
import { UNLIMITED_PLANS_FILE } from "./plans.ts";

/**
 * Real local adapters over a fresh table, for handler tests through
 * `app.request()`. Queues and the scheduler are not started: tests that need
 * them running start them. Plans without limits unless `env` names a HOIST_PLANS_FILE.
 */
export async function testDeps(env: Record<string, string> = {}): Promise<Deps & { config: Config }> {
  // As the embedded runtime has it (adapters/local/binding-cache.ts), so every handler test checks its forgetting too.
  const store = withBindingCache((await testTable()).store);
  const config = loadConfig({ HOIST_LOG_LEVEL: "silent", HOIST_PLANS_FILE: UNLIMITED_PLANS_FILE, ...env });
  const logger = createLogger(config.logLevel);
  const dataDir = await mkdtemp(join(tmpdir(), "hoist-test-"));
  return {
    config,
    logger,
    store,
    queue: new TableQueue({ store, name: "deploy", maxAttempts: 3, visibilitySeconds: 30, logger }),
    scheduler: new TableScheduler(
      new TableQueue({ store, name: "schedules", maxAttempts: 3, visibilitySeconds: 30, logger }),
    ),
    broadcaster: new ApiGatewayBroadcaster({ endpoint: "http://127.0.0.1:9" }),
    executor: new Ssh2Executor({ networks: config.ssh }),
    keyVault: await FileKeyVault.open(dataDir),
    jwtKeys: await fileKeySet(dataDir),
    // No interval: `GET /api/usage` writes the caller's counts first; tests that read the table flush.
    usage: new UsageMeter({ store, logger }),
  };
}
