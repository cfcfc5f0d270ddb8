import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { ApiGatewayManagementApiClient, GetConnectionCommand } from "@aws-sdk/client-apigatewaymanagementapi";
import { ApiGatewayBroadcaster } from "@hoist/core/adapters/aws/apigw-broadcaster";
import { createLogger } from "@hoist/core/logger";
import type { WsEvent, WsResult } from "@hoist/core/realtime/ws-handler";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { WsGateway } from "./ws-gateway.ts";

interface Harness {
  url: string;
  events: WsEvent[];
  broadcaster: ApiGatewayBroadcaster;
  client: ApiGatewayManagementApiClient;
  gateway: WsGateway;
}

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

async function harness(
  handler: (event: WsEvent) => Promise<WsResult> = async () => ({ statusCode: 200 }),
  limits = { idleTimeoutSeconds: 60, maxAgeSeconds: 60 },
): Promise<Harness> {
  const events: WsEvent[] = [];
  const gateway = new WsGateway({
    handler: async (event) => {
      events.push(event);
      return handler(event);
    },
    logger: createLogger("silent"),
    ...limits,
  });
  const server: Server = createServer((_req, res) => res.writeHead(404).end());
  gateway.attach(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const endpoint = await gateway.listenManagement();
  const client = new ApiGatewayManagementApiClient({
    endpoint,
    region: "local",
    credentials: { accessKeyId: "x", secretAccessKey: "y" },
  });
  cleanup.push(async () => {
    client.destroy();
    await gateway.close();
    await new Promise((resolve) => server.close(resolve));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/ws`,
    events,
    broadcaster: new ApiGatewayBroadcaster({ endpoint, client }),
    client,
    gateway,
  };
}

const open = (url: string) =>
  new Promise<WebSocket>((resolve, reject) => {
    const socket = new WebSocket(url);
    socket.once("open", () => resolve(socket));
    socket.once("error", reject);
    socket.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });

const until = async (check: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe("WebSocket gateway", () => {
  it("turns a socket's life into $connect, $default and $disconnect events, in order", async () => {
    const h = await harness();
    const socket = await open(`${h.url}?token=abc`);
    socket.send(JSON.stringify({ action: "ping", n: 1 }));
    socket.send(JSON.stringify({ action: "ping", n: 2 }));
    await until(() => h.events.length === 3);
    socket.close();
    await until(() => h.events.length === 4);
    expect(h.events.map((e) => e.requestContext.routeKey)).toEqual(["$connect", "$default", "$default", "$disconnect"]);
    expect(h.events[0]?.queryStringParameters).toEqual({ token: "abc" });
    expect(h.events.map((e) => e.body ?? null).slice(1, 3)).toEqual([
      '{"action":"ping","n":1}',
      '{"action":"ping","n":2}',
    ]);
    const ids = new Set(h.events.map((e) => e.requestContext.connectionId));
    expect(ids.size).toBe(1);
  });

  it("refuses the upgrade with the status $connect returns", async () => {
    const h = await harness(async (e) => ({ statusCode: e.requestContext.routeKey === "$connect" ? 401 : 200 }));
    await expect(open(h.url)).rejects.toThrow("HTTP 401");
    await expect(open(h.url.replace("/ws", "/elsewhere"))).rejects.toThrow("HTTP 404");
  });

  it("delivers @connections posts from the AWS SDK, answers GET, and 410 Gone for closed connections", async () => {
    const h = await harness();
    const socket = await open(h.url);
    const received: string[] = [];
    socket.on("message", (d) => received.push(d.toString()));
    await until(() => h.events.length === 1);
    const id = h.events[0]?.requestContext.connectionId ?? "";

    expect(await h.broadcaster.post(id, { type: "hello" })).toBe("sent");
    await until(() => received.length === 1);
    expect(JSON.parse(received[0] ?? "")).toEqual({ type: "hello" });

    const info = await h.client.send(new GetConnectionCommand({ ConnectionId: id }));
    expect(info.Identity?.SourceIp).toBe("127.0.0.1");

    socket.close();
    await until(() => h.gateway.size === 0);
    expect(await h.broadcaster.post(id, { type: "late" })).toBe("gone");
    expect(await h.broadcaster.post("never-existed", { type: "x" })).toBe("gone");
  });

  it("closes idle connections and connections past their maximum age", async () => {
    const idle = await harness(undefined, { idleTimeoutSeconds: 1, maxAgeSeconds: 60 });
    const a = await open(idle.url);
    const closedA = new Promise<number>((resolve) => a.once("close", (code) => resolve(code)));
    expect(await closedA).toBe(1001);

    const aged = await harness(undefined, { idleTimeoutSeconds: 60, maxAgeSeconds: 1 });
    const b = await open(aged.url);
    const timer = setInterval(() => b.send('{"action":"ping"}'), 200);
    const closedB = await new Promise<number>((resolve) => b.once("close", (code) => resolve(code)));
    clearInterval(timer);
    expect(closedB).toBe(1001);
    await until(() => aged.events.at(-1)?.requestContext.routeKey === "$disconnect");
  });
});
