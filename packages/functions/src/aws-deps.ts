import { hkdfSync } from "node:crypto";
import type { JwtKeySet } from "@hoist/core/auth/keys";
import { loadConfig } from "@hoist/core/config";
import { ConfigError } from "@hoist/core/errors";
import { createLogger } from "@hoist/core/logger";
import type { Deps, JobQueue, KeyVault, Scheduler } from "@hoist/core/ports";
import type { Executor } from "@hoist/core/servers/ssh";
import { UsageMeter } from "@hoist/core/usage/meter";
import { lazyApiGatewayBroadcaster } from "./ports/lazy.ts";
import { dynamoStore } from "./ports/store.ts";
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
 * stacks give that function, read at import: every request and job needs the
 * table and the secrets, so they are ready before the first one. Each
 * entrypoint names the other ports it uses, so its bundle carries only those
 * clients (the ws function has no SSH, KMS, SQS or Scheduler code); those are
 * built, and their SDK clients loaded (ports/lazy.ts), on first use.
 */
export async function awsDeps(ports: PortBuilders = {}): Promise<Deps> {
  // OpenID Connect sign-in is optional: its three secrets may be left unset (loadConfig wants all or none).
  const oidc = ["OIDC_ISSUER", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET"];
  const secrets = await loadSecrets(
    ["JWT_PRIVATE_KEY", "GITHUB_CLIENT_SECRET", "GITHUB_WEBHOOK_SECRET", ...oidc],
    process.env,
    undefined,
    { optional: oidc },
  );
  const config = loadConfig({
    ...process.env,
    HOIST_GITHUB_CLIENT_SECRET: secrets.GITHUB_CLIENT_SECRET,
    HOIST_GITHUB_WEBHOOK_SECRET: secrets.GITHUB_WEBHOOK_SECRET,
    HOIST_OIDC_ISSUER: secrets.OIDC_ISSUER,
    HOIST_OIDC_CLIENT_ID: secrets.OIDC_CLIENT_ID,
    HOIST_OIDC_CLIENT_SECRET: secrets.OIDC_CLIENT_SECRET,
  });
  const jwtSecret = secrets.JWT_PRIVATE_KEY;
  // The key set's parser (and jose) only where the secret is bound: a chunk of its own.
  const jwtKeys: JwtKeySet | undefined = jwtSecret
    ? await (await import("@hoist/core/auth/keys")).parseKeySet(jwtSecret, "SST secret JWT_PRIVATE_KEY")
    : undefined;

  // List cursors are signed with a key every instance of the stage shares: derived from the JWT signing secret.
  const cursorKey = jwtSecret ? new Uint8Array(hkdfSync("sha256", jwtSecret, "hoist", "list-cursors", 32)) : undefined;
  const store = lazy("store", () => dynamoStore(cursorKey));
  const broadcaster = lazy("broadcaster", lazyApiGatewayBroadcaster);
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
