import { loadConfig } from "@hoist/core/config";
import { ConfigError } from "@hoist/core/errors";
import { createLogger } from "@hoist/core/logger";
import { listUsers } from "@hoist/core/users/service";
import { startRuntime } from "./runtime.ts";

// Hoist supports Node 20 and 22; the SDK's notice about its own future Node 22 requirement is not for our users.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

const say = (line = "") => process.stdout.write(`${line}\n`);

async function main() {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\nSee README.md § Configuration.\n`);
      process.exit(1);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  const started = Date.now();
  const runtime = await startRuntime(config, logger);

  say(`Hoist is running (embedded, data in ${config.dataDir}) — ready in ${Date.now() - started} ms`);
  say(`  API        ${runtime.url}/api`);
  say(`  Docs       ${runtime.url}/docs`);
  say(`  Health     ${runtime.url}/health/ready`);
  say(`  WebSocket  ${runtime.wsUrl}?token=<accessToken>`);
  const { items } = await listUsers(runtime.deps, 1);
  if (items.length === 0) {
    say("  No accounts yet: the first account registered becomes the admin:");
    say(
      `    curl -X POST ${runtime.url}/api/auth/register -H 'Content-Type: application/json' -d '{"username":"admin","email":"you@example.com","password":"<a long passphrase>"}'`,
    );
  }
  say("Press Ctrl+C to stop.");

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    say(`\n${signal} received; stopping…`);
    runtime.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
}

main().catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`Hoist could not start: ${message}\n`);
  process.exit(1);
});
