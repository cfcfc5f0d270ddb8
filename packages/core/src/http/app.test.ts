import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { beforeAll, describe, expect, it } from "vitest";
import type { Deps } from "../ports.ts";
import { DynamoStore } from "../store/dynamo-store.ts";
import { testDeps } from "../testing/deps.ts";
import { createHttpApp } from "./app.ts";
import type { RequestRecord } from "./middleware/request-log.ts";

let deps: Deps;
let app: ReturnType<typeof createHttpApp>;
const seen: RequestRecord[] = [];
const logLines: string[] = [];

beforeAll(async () => {
  deps = await testDeps({ HOIST_CORS_ORIGINS: "https://dash.example", HOIST_BODY_LIMIT_BYTES: "2048" });
  deps.logger = {
    debug: () => {},
    info: (msg, fields) => logLines.push(JSON.stringify({ msg, ...fields })),
    warn: () => {},
    error: (msg, fields) => logLines.push(JSON.stringify({ msg, ...fields })),
  };
  app = createHttpApp(deps, { onRequest: (r) => seen.push(r) });
});

const expectProblem = async (res: Response, status: number) => {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toBe("application/problem+json");
  const body = (await res.json()) as Record<string, unknown>;
  expect(body).toMatchObject({ status, title: expect.any(String), detail: expect.any(String) });
  expect(body.requestId).toBe(res.headers.get("x-request-id"));
  return body;
};

describe("health", () => {
  it("answers /health, /health/live and /health/ready", async () => {
    for (const path of ["/health", "/health/live", "/health/ready"]) {
      const res = await app.request(path);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: "ok" });
    }
  });

  it("is not ready when the table is unreachable", async () => {
    const unreachable = new DynamoStore(
      new DynamoDBClient({
        endpoint: "http://127.0.0.1:9",
        region: "local",
        credentials: { accessKeyId: "x", secretAccessKey: "y" },
        maxAttempts: 1,
      }),
      "nowhere",
    );
    const warned: Record<string, unknown>[] = [];
    const logger = { ...deps.logger, warn: (msg: string, fields?: object) => warned.push({ msg, ...fields }) };
    const down = createHttpApp({ ...deps, store: unreachable, logger });
    const res = await down.request("/health/ready", { headers: { "X-Request-Id": "ready-probe-1" } });
    const body = await expectProblem(res, 503);
    expect(body.detail).toMatch(/table/);
    // A route's own log line carries the request's id, which it did not pass.
    expect(warned).toEqual([expect.objectContaining({ msg: "readiness check failed", requestId: "ready-probe-1" })]);
  });
});

describe("errors are problem JSON", () => {
  it("404 for an unknown route", async () => {
    await expectProblem(await app.request("/api/nope"), 404);
  });

  it("405 with Allow for a known path and another method", async () => {
    const res = await app.request("/health/ready", { method: "DELETE" });
    await expectProblem(res, 405);
    expect(res.headers.get("allow")).toBe("GET");
  });

  it("415 for a body that is not JSON", async () => {
    const res = await app.request("/api/anything", {
      method: "POST",
      headers: { "Content-Type": "text/plain" },
      body: "hello",
    });
    await expectProblem(res, 415);
  });

  it("413 for a body over the limit", async () => {
    const res = await app.request("/api/anything", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ blob: "x".repeat(4096) }),
    });
    await expectProblem(res, 413);
  });
});

describe("cross-cutting", () => {
  it("sets security headers and echoes a request id", async () => {
    const res = await app.request("/health", { headers: { "X-Request-Id": "abc-123" } });
    expect(res.headers.get("x-request-id")).toBe("abc-123");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("strict-transport-security")).toContain("max-age");
  });

  it("answers CORS preflights for configured origins only", async () => {
    const ok = await app.request("/api/servers", {
      method: "OPTIONS",
      headers: { Origin: "https://dash.example", "Access-Control-Request-Method": "POST" },
    });
    expect(ok.headers.get("access-control-allow-origin")).toBe("https://dash.example");
    const other = await app.request("/api/servers", {
      method: "OPTIONS",
      headers: { Origin: "https://evil.example", "Access-Control-Request-Method": "POST" },
    });
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("logs one structured line per request, without query strings or bodies", async () => {
    seen.length = 0;
    logLines.length = 0;
    await app.request("/health?token=secret-value", { headers: { Authorization: "Bearer secret-value" } });
    expect(seen).toEqual([expect.objectContaining({ method: "GET", path: "/health", status: 200 })]);
    expect(logLines).toHaveLength(1);
    expect(logLines[0]).not.toContain("secret-value");
    expect(JSON.parse(logLines[0] ?? "{}")).toMatchObject({ msg: "request", path: "/health", status: 200 });
  });
});

describe("documentation", () => {
  it("serves an OpenAPI 3.1 document generated from the route schemas", async () => {
    const res = await app.request("/openapi.json");
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/health", "/health/live", "/health/ready"]));
  });

  it("serves interactive docs", async () => {
    const res = await app.request("/docs");
    expect(res.status).toBe(200);
    expect(await res.text()).toContain("/openapi.json");
  });
});
