import type { Broadcaster, JobQueue, KeyVault, Scheduler } from "@hoist/core/ports";
import { lazySsh2Executor } from "./lazy-executor.ts";

/** `load` run once, on first call; a failed load is tried again on the next call. */
export function loadOnce<T>(load: () => Promise<T>): () => Promise<T> {
  let loaded: Promise<T> | undefined;
  return () => {
    loaded ??= load().catch((err: unknown) => {
      loaded = undefined;
      throw err;
    });
    return loaded;
  };
}

/*
 * The AWS adapters of ports/*.ts, each imported on its first call: a chunk of
 * its own (`splitting`, infra/esbuild.ts), so the SDK client it wraps is not
 * parsed at cold start by a function that may never call it. Each adapter is
 * built on first use, as before, from the same environment.
 */

export const lazySqsQueue = (): JobQueue => {
  const queue = loadOnce(() => import("./queue.ts").then(({ sqsQueue }) => sqsQueue()));
  return { send: async (job, opts) => (await queue()).send(job, opts) };
};

export const lazyEventBridgeScheduler = (): Scheduler => {
  const scheduler = loadOnce(() => import("./scheduler.ts").then(({ eventBridgeScheduler }) => eventBridgeScheduler()));
  return {
    schedule: async (name, at, event) => (await scheduler()).schedule(name, at, event),
    cancel: async (name) => (await scheduler()).cancel(name),
  };
};

export const lazyKmsKeyVault = (): KeyVault => {
  const vault = loadOnce(() => import("./key-vault.ts").then(({ kmsKeyVault }) => kmsKeyVault()));
  return {
    encrypt: async (plaintext, context) => (await vault()).encrypt(plaintext, context),
    decrypt: async (envelope, context) => (await vault()).decrypt(envelope, context),
  };
};

export const lazyApiGatewayBroadcaster = (): Broadcaster => {
  const broadcaster = loadOnce(() =>
    import("./broadcaster.ts").then(({ apiGatewayBroadcaster }) => apiGatewayBroadcaster()),
  );
  return {
    post: async (connectionId, message) => (await broadcaster()).post(connectionId, message),
    close: async (connectionId) => (await broadcaster()).close(connectionId),
  };
};

/** Every port beyond the table and the WebSocket API, each loaded on first use: what the http function and the workers use. */
export const everyPort = () => ({
  queue: lazySqsQueue,
  scheduler: lazyEventBridgeScheduler,
  keyVault: lazyKmsKeyVault,
  executor: lazySsh2Executor,
});
