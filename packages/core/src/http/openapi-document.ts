import { loadConfig } from "../config.ts";
import { createLogger } from "../logger.ts";
import type { Deps } from "../ports.ts";
import { createHttpApp } from "./app.ts";

/** A port the document never needs: any use of it throws, so a route that starts needing one is noticed. */
function unavailable<T extends object>(port: string): T {
  return new Proxy({} as T, {
    get(_target, prop) {
      throw new Error(`${port}.${String(prop)} is not available while building the OpenAPI document`);
    },
  });
}

/**
 * The OpenAPI document exactly as `GET /openapi.json` serves it, from the real
 * app built with the default configuration (`servers` is then `/`) and no
 * backend: no DynamoDB, no keys, no files. `npm run openapi` commits it; the
 * drift test in packages/client compares it with what a fully wired app serves.
 */
export async function servedOpenApiDocument(): Promise<unknown> {
  const config = loadConfig({ HOIST_LOG_LEVEL: "silent" });
  const deps: Deps = {
    config,
    logger: createLogger(config.logLevel),
    store: unavailable("store"),
    queue: unavailable("queue"),
    scheduler: unavailable("scheduler"),
    broadcaster: unavailable("broadcaster"),
    keyVault: unavailable("keyVault"),
    executor: unavailable("executor"),
    jwtKeys: unavailable("jwtKeys"),
    usage: unavailable("usage"),
  };
  const res = await createHttpApp(deps).request("/openapi.json");
  if (res.status !== 200) throw new Error(`GET /openapi.json answered ${res.status}: ${await res.text()}`);
  return res.json();
}
