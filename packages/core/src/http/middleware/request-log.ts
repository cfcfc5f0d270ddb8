import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../env.ts";
import { clientIp } from "./client-ip.ts";

export interface RequestRecord {
  method: string;
  path: string;
  status: number;
  durationMs: number;
  ts: number;
  requestId: string;
}

/**
 * One structured log line per request: method, path (never the query string,
 * which may carry a token), status, duration. Never bodies or headers.
 * `observe` receives the same record (the `logs:all` stream builds on it).
 */
export function requestLog(observe?: (record: RequestRecord) => void | Promise<void>): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = performance.now();
    await next();
    const record: RequestRecord = {
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      durationMs: Math.round((performance.now() - started) * 100) / 100,
      ts: Date.now(),
      requestId: c.get("requestId"),
    };
    c.var.logger.info("request", { ...record, ip: clientIp(c) });
    await observe?.(record);
  };
}
