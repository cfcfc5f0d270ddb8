import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "@hoist/core/logger";
import type { Broadcaster, PostResult } from "@hoist/core/ports";
import type { WsEvent, WsResult } from "@hoist/core/realtime/ws-handler";
import { type WebSocket, WebSocketServer } from "ws";

/** API Gateway's limits: 128 KB messages, 10 min idle, 2 h per connection. */
const MAX_MESSAGE_BYTES = 128 * 1024;

export interface WsGatewayOptions {
  handler: (event: WsEvent) => Promise<WsResult>;
  logger: Logger;
  idleTimeoutSeconds: number;
  maxAgeSeconds: number;
  path?: string;
}

interface Connection {
  socket: WebSocket;
  connectedAt: number;
  lastActiveAt: number;
  sourceIp: string;
  userAgent: string;
  idle?: NodeJS.Timeout;
  maxAge: NodeJS.Timeout;
  /** Events of one connection reach the handler in order, as API Gateway delivers them. */
  queue: Promise<unknown>;
}

/**
 * The embedded stand-in for an API Gateway WebSocket API: sockets on `/ws`
 * become `$connect` / `$default` / `$disconnect` events for the same handler
 * the Lambda runs. The runtime posts to its sockets in process
 * (`broadcaster`); a loopback-only management endpoint (`listenManagement`)
 * also serves `POST/GET/DELETE /@connections/{id}`, so the AWS SDK adapter
 * is tested against it unchanged.
 */
export class WsGateway {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
  private readonly connections = new Map<string, Connection>();
  private management?: Server;
  private readonly path: string;

  constructor(private readonly opts: WsGatewayOptions) {
    this.path = opts.path ?? "/ws";
  }

  get size(): number {
    return this.connections.size;
  }

  attach(server: Server): void {
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      // Node takes its own error listener off an upgraded socket: a reset before ws adopts it
      // (the $connect handler awaits the database) would otherwise be an uncaught 'error'.
      socket.on("error", () => socket.destroy());
      try {
        this.upgrade(req, socket, head);
      } catch (err) {
        this.opts.logger.error("websocket upgrade failed", { error: err });
        refuse(socket, 500);
      }
    });
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = parseTarget(req.url);
    if (!url) return void refuse(socket, 400);
    if (url.pathname !== this.path) return void refuse(socket, 404);
    // A malformed handshake is refused before $connect runs, as API Gateway does.
    const invalid = handshakeError(req);
    if (invalid) return void refuse(socket, invalid);
    void this.connect(req, url, socket, head).catch((err: unknown) => {
      this.opts.logger.error("websocket connect failed", { error: err });
      refuse(socket, 500);
    });
  }

  /** Starts the management endpoint on loopback; returns its URL (the `endpoint` for ApiGatewayManagementApiClient). */
  async listenManagement(port = 0): Promise<string> {
    const server = createServer((req, res) => {
      this.manage(req, res).catch((err: unknown) => {
        this.opts.logger.error("connections api failed", { error: err });
        if (res.headersSent) res.destroy();
        else res.writeHead(500).end();
      });
    });
    this.management = server;
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    const address = server.address();
    return `http://127.0.0.1:${typeof address === "object" && address ? address.port : port}`;
  }

  async close(): Promise<void> {
    for (const [, connection] of this.connections) connection.socket.close(1001, "Server shutting down");
    await Promise.all([...this.connections.values()].map((c) => c.queue));
    this.wss.close();
    const management = this.management;
    if (management) {
      management.closeAllConnections();
      await new Promise<void>((resolve) => management.close(() => resolve()));
    }
  }

  /**
   * The Broadcaster port in process: what `POST` and `DELETE /@connections/{id}`
   * do, without HTTP and request signing in between (the runtime's own sockets).
   */
  readonly broadcaster: Broadcaster = {
    post: async (connectionId: string, message: unknown): Promise<PostResult> => {
      const connection = this.connections.get(connectionId);
      if (!connection || connection.socket.readyState !== connection.socket.OPEN) return "gone";
      // Sent as a string: the socket copies it into memory freed once written, not a Buffer that waits for a GC.
      const data = JSON.stringify(message);
      const bytes = Buffer.byteLength(data);
      if (bytes > MAX_MESSAGE_BYTES) throw new Error(`Message too long (${bytes} bytes)`);
      await sendTo(connection, data);
      return "sent";
    },
    close: async (connectionId: string): Promise<void> => {
      this.connections.get(connectionId)?.socket.close(1000, "Closed by the server");
    },
  };

  private async connect(req: IncomingMessage, url: URL, socket: Duplex, head: Buffer): Promise<void> {
    const connectionId = randomBytes(12).toString("base64url");
    const result = await this.opts.handler({
      requestContext: { routeKey: "$connect", eventType: "CONNECT", connectionId },
      queryStringParameters: Object.fromEntries(url.searchParams),
      headers: flatHeaders(req),
    });
    if (result.statusCode !== 200) return refuse(socket, result.statusCode);
    const disconnect = () =>
      this.dispatch(connectionId, {
        requestContext: { routeKey: "$disconnect", eventType: "DISCONNECT", connectionId },
      });
    if (socket.destroyed) return disconnect();
    let opened = false;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      opened = true;
      this.open(connectionId, ws, req);
    });
    // ws can still refuse (a bad Sec-WebSocket-Extensions, a socket gone meanwhile): $connect then needs its $disconnect.
    if (!opened)
      socket.once("close", () => {
        if (!opened) void disconnect();
      });
  }

  private open(connectionId: string, socket: WebSocket, req: IncomingMessage): void {
    const now = Date.now();
    const connection: Connection = {
      socket,
      connectedAt: now,
      lastActiveAt: now,
      sourceIp: req.socket.remoteAddress ?? "unknown",
      userAgent: req.headers["user-agent"] ?? "",
      maxAge: setTimeout(
        () => socket.close(1001, "Connection reached its maximum age"),
        this.opts.maxAgeSeconds * 1000,
      ),
      queue: Promise.resolve(),
    };
    this.connections.set(connectionId, connection);
    this.touch(connectionId, connection);

    socket.on("message", (data, isBinary) => {
      try {
        this.touch(connectionId, connection);
        const body = Buffer.isBuffer(data) ? data : Buffer.concat(Array.isArray(data) ? data : [Buffer.from(data)]);
        connection.queue = connection.queue.then(() =>
          this.dispatch(connectionId, {
            requestContext: { routeKey: "$default", eventType: "MESSAGE", connectionId },
            body: isBinary ? body.toString("base64") : body.toString("utf8"),
            isBase64Encoded: isBinary,
          }),
        );
      } catch (err) {
        this.opts.logger.error("websocket message dropped", { connectionId, error: err });
      }
    });
    socket.on("error", () => socket.terminate());
    socket.on("close", () => {
      clearTimeout(connection.idle);
      clearTimeout(connection.maxAge);
      this.connections.delete(connectionId);
      connection.queue = connection.queue.then(() =>
        this.dispatch(connectionId, {
          requestContext: { routeKey: "$disconnect", eventType: "DISCONNECT", connectionId },
        }),
      );
    });
  }

  private touch(connectionId: string, connection: Connection): void {
    connection.lastActiveAt = Date.now();
    clearTimeout(connection.idle);
    connection.idle = setTimeout(() => {
      this.opts.logger.debug("websocket idle timeout", { connectionId });
      connection.socket.close(1001, "Idle timeout");
    }, this.opts.idleTimeoutSeconds * 1000);
  }

  private async dispatch(connectionId: string, event: WsEvent): Promise<void> {
    try {
      await this.opts.handler(event);
    } catch (err) {
      this.opts.logger.error("websocket handler failed", {
        connectionId,
        route: event.requestContext.routeKey,
        error: err,
      });
    }
  }

  private async manage(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = decodePath(req.url);
    if (path === undefined)
      return void res.writeHead(400, { "Content-Type": "application/json" }).end('{"message":"Bad Request"}');
    const match = /^\/(?:[^/]+\/)?@connections\/([^/]+)$/.exec(path);
    if (!match?.[1])
      return void res.writeHead(404, { "Content-Type": "application/json" }).end('{"message":"Not Found"}');
    const connectionId = match[1];
    const connection = this.connections.get(connectionId);
    if (!connection || connection.socket.readyState !== connection.socket.OPEN) {
      res.writeHead(410, { "Content-Type": "application/json", "x-amzn-ErrorType": "GoneException" });
      return void res.end('{"message":"GoneException"}');
    }
    switch (req.method) {
      case "POST": {
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const chunk of req) {
          size += (chunk as Buffer).length;
          if (size > MAX_MESSAGE_BYTES) {
            res.writeHead(413, { "Content-Type": "application/json", "x-amzn-ErrorType": "PayloadTooLargeException" });
            return void res.end('{"message":"Message too long"}');
          }
          chunks.push(chunk as Buffer);
        }
        await sendTo(connection, Buffer.concat(chunks));
        return void res.writeHead(200).end();
      }
      case "GET":
        res.writeHead(200, { "Content-Type": "application/json" });
        return void res.end(
          JSON.stringify({
            connectedAt: new Date(connection.connectedAt).toISOString(),
            lastActiveAt: new Date(connection.lastActiveAt).toISOString(),
            identity: { sourceIp: connection.sourceIp, userAgent: connection.userAgent },
          }),
        );
      case "DELETE":
        connection.socket.close(1000, "Closed by the server");
        return void res.writeHead(204).end();
      default:
        return void res.writeHead(405, { Allow: "GET, POST, DELETE" }).end();
    }
  }
}

const REASONS: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  429: "Too Many Requests",
  500: "Internal Server Error",
};

/** Answers a refused upgrade with a bodiless HTTP response, then closes the socket for good. */
function refuse(socket: Duplex, status: number): void {
  if (socket.destroyed) return;
  if (!socket.writable) return void socket.destroy();
  // The server lets clients half-close: without the destroy, a peer that never closes would keep the socket.
  socket.once("finish", () => socket.destroy());
  socket.end(`HTTP/1.1 ${status} ${REASONS[status] ?? "Refused"}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

/** The request target as a URL, or undefined when it does not parse (`http://[`, `//`). */
function parseTarget(target: string | undefined): URL | undefined {
  try {
    return new URL(target ?? "/", "http://localhost");
  } catch {
    return undefined;
  }
}

function decodePath(target: string | undefined): string | undefined {
  const url = parseTarget(target);
  try {
    return url && decodeURIComponent(url.pathname);
  } catch {
    return undefined;
  }
}

/** ws's own handshake checks (RFC 6455 § 4.2.1), as a status: 405, 400, or undefined when valid. */
function handshakeError(req: IncomingMessage): number | undefined {
  if (req.method !== "GET") return 405;
  if (req.headers.upgrade?.toLowerCase() !== "websocket") return 400;
  if (!/^[+/0-9A-Za-z]{22}==$/.test(req.headers["sec-websocket-key"] ?? "")) return 400;
  const version = Number(req.headers["sec-websocket-version"]);
  if (version !== 13 && version !== 8) return 400;
  return undefined;
}

function flatHeaders(req: IncomingMessage): Record<string, string> {
  return Object.fromEntries(
    Object.entries(req.headers).flatMap(([k, v]) => (v === undefined ? [] : [[k, Array.isArray(v) ? v.join(",") : v]])),
  );
}

/** A text frame to the socket; a socket that failed meanwhile is the closing handler's business. */
function sendTo(connection: Connection, data: Buffer | string): Promise<void> {
  return new Promise<void>((resolve) => connection.socket.send(data, { binary: false }, () => resolve()));
}
