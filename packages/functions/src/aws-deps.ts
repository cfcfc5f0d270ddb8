import { hkdfSync } from "node:crypto";
import type { JwtKeySet } from "@hoist/core/auth/keys";
import { type Config, loadConfig } from "@hoist/core/config";
import { ConfigError, NotConfiguredError, ServiceUnavailableError } from "@hoist/core/errors";
import { createLogger, type Logger } from "@hoist/core/logger";
import type { Deps, JobQueue, KeyVault, Scheduler } from "@hoist/core/ports";
import type { Executor } from "@hoist/core/servers/ssh";
import { UsageMeter } from "@hoist/core/usage/meter";
import { lazyApiGatewayBroadcaster } from "./ports/lazy.ts";
import { dynamoStore } from "./ports/store.ts";
import { loadSecrets, readSecrets } from "./secrets.ts";

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
  const secrets = await loadSecrets(["JWT_PRIVATE_KEY", "GITHUB_CLIENT_SECRET", "GITHUB_WEBHOOK_SECRET"]);
  const env: Record<string, string | undefined> = {
    ...process.env,
    HOIST_GITHUB_CLIENT_SECRET: secrets.GITHUB_CLIENT_SECRET,
    HOIST_GITHUB_WEBHOOK_SECRET: secrets.GITHUB_WEBHOOK_SECRET,
  };
  const config = loadConfig(env);
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
  // On a stage SST deployed, OpenID Connect's settings are secrets read on first use; elsewhere HOIST_OIDC_* as given.
  const readOidcSettings = env.SST_APP ? oidcFromSsm(env, logger) : undefined;
  // Written as soon as counted, alongside the request; the http handler awaits it before Lambda may freeze the instance.
  const usage = lazy("usage", () => new UsageMeter({ store: store(), logger, flushOnCount: true }));

  return {
    config,
    logger,
    ...(readOidcSettings ? { readOidcSettings } : {}),
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

/** OpenID Connect sign-in's SST secrets: optional, all three or none. */
const OIDC_SECRETS = ["OIDC_ISSUER", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET"];

/**
 * OpenID Connect sign-in's settings on a stage SST deployed, read from SSM on the
 * first request that signs in with the provider (then kept; a failed read is not).
 * They are not bound like the other secrets: a function that prefetches its
 * secrets (stacks/Api.ts) needs every bound one set, and these are optional;
 * nor read at import, which no other request needs. A stage changes them with
 * `sst secrets set` and a deploy, as it changes the others.
 */
function oidcFromSsm(env: Record<string, string | undefined>, logger: Logger): () => Promise<Config["oidc"]> {
  let settings: Promise<Config["oidc"]> | undefined;
  const read = async (): Promise<Config["oidc"]> => {
    try {
      const s = await readSecrets(OIDC_SECRETS, env, undefined, { optional: OIDC_SECRETS });
      return loadConfig({
        ...env,
        HOIST_OIDC_ISSUER: s.OIDC_ISSUER,
        HOIST_OIDC_CLIENT_ID: s.OIDC_CLIENT_ID,
        HOIST_OIDC_CLIENT_SECRET: s.OIDC_CLIENT_SECRET,
      }).oidc;
    } catch (err) {
      settings = undefined;
      // A ConfigError names the variables at fault, an SSM error the parameters: neither carries a value.
      logger.error("oidc.settings_unreadable", { error: err instanceof Error ? err.message : String(err) });
      if (err instanceof ConfigError) throw new NotConfiguredError("OpenID Connect sign-in is misconfigured");
      throw new ServiceUnavailableError("OpenID Connect sign-in's settings could not be read; try again");
    }
  };
  return () => {
    settings ??= read();
    return settings;
  };
}
