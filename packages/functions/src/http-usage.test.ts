import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { generateKeySetJson } from "@hoist/core/auth/keys";
import type { DynamoStore } from "@hoist/core/store/dynamo-store";
import { testTable } from "@hoist/core/testing/dynamo";
import { monthOf, type UsageItem, usageKey } from "@hoist/core/usage/entity";
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { httpEvent } from "./testing/http-event.ts";

const SLOW_USAGE_MS = 300;
let store: DynamoStore;
let proxy: Server;
let handler: (event: APIGatewayProxyEventV2) => Promise<{ statusCode: number; body: string }>;

/**
 * The test run's DynamoDB Local behind a proxy that holds every usage-counter
 * write for a while: a handler that returned without waiting for it would be
 * seen returning before the count is stored.
 */
async function slowUsageProxy(target: string): Promise<Server> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const usageWrite = String(req.headers["x-amz-target"]).endsWith("UpdateItem") && body.includes("USAGE#");
      setTimeout(
        () => {
          const url = new URL(req.url ?? "/", target);
          const upstream = request(url, { method: req.method, headers: req.headers }, (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          });
          upstream.on("error", () => res.destroy());
          upstream.end(body);
        },
        usageWrite ? SLOW_USAGE_MS : 0,
      );
    });
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return server;
}

afterAll(() => new Promise<void>((ok) => (proxy ? proxy.close(() => ok()) : ok())));

beforeAll(async () => {
  const table = await testTable("lambda");
  store = table.store;
  proxy = await slowUsageProxy(inject("dynamoEndpoint"));
  // What the stack gives the function, with the SDK pointed at the test run's DynamoDB Local (through the proxy).
  Object.assign(process.env, {
    HOIST_TABLE_NAME: table.tableName,
    HOIST_LOG_LEVEL: "silent",
    HOIST_RATE_LIMIT_API: "0",
    SST_Secret_value_JWT_PRIVATE_KEY: await generateKeySetJson(),
    AWS_ENDPOINT_URL_DYNAMODB: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    AWS_REGION: "local",
    AWS_ACCESS_KEY_ID: "hoist",
    AWS_SECRET_ACCESS_KEY: "local",
  });
  ({ handler } = (await import("./http.ts")) as unknown as { handler: typeof handler });
});

describe("the http Lambda handler", () => {
  it("has written the request's usage count when it returns", async () => {
    const registered = await handler(
      httpEvent("POST", "/api/auth/register", {
        body: { username: "lambda", email: "lambda@example.com", password: "correct horse battery staple" },
      }),
    );
    expect(registered.statusCode).toBe(201);
    const { token, user } = JSON.parse(registered.body) as { token: string; user: { id: string } };
    const requests = async () => (await store.get<UsageItem>(usageKey(user.id, monthOf(Date.now()))))?.requests ?? 0;

    for (let i = 1; i <= 3; i++) {
      const started = performance.now();
      expect((await handler(httpEvent("GET", "/api/auth/verify", { token }))).statusCode).toBe(200);
      expect(performance.now() - started).toBeGreaterThanOrEqual(SLOW_USAGE_MS - 10);
      expect(await requests()).toBe(i);
    }
  });
});
