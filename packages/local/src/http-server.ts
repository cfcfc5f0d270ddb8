import type { Server } from "node:http";
import type { Socket } from "node:net";
import type { Logger } from "@hoist/core/logger";
import { createAdaptorServer } from "@hono/node-server";

/**
 * Node's defaults give a client 60 s to send its headers and 5 min for the
 * whole request, checked every 30 s: a few slow clients hold sockets for
 * minutes. Bodies are small here (HOIST_BODY_LIMIT_BYTES), so a minute is
 * plenty. Header size stays Node's 16 KB (431 beyond).
 */
export const HTTP_LIMITS = {
  headersTimeout: 10_000,
  requestTimeout: 60_000,
  connectionsCheckingInterval: 1_000,
} as const;

/** Answers for requests the parser refuses, as Node's default `clientError` handling sends them. */
const REFUSALS: Record<string, string> = {
  HPE_HEADER_OVERFLOW: "431 Request Header Fields Too Large",
  HPE_CHUNK_EXTENSIONS_OVERFLOW: "413 Payload Too Large",
  ERR_HTTP_REQUEST_TIMEOUT: "408 Request Timeout",
};

/** The Hono app on a Node HTTP server with the limits above; a request that does not parse gets its 4xx and the socket closes. */
export function createHttpServer(fetch: Parameters<typeof createAdaptorServer>[0]["fetch"], logger: Logger): Server {
  const server = createAdaptorServer({ fetch, serverOptions: HTTP_LIMITS }) as Server;
  // With a listener, Node leaves the answer and the socket to us; this one must never throw.
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
    try {
      logger.debug("unparseable http request", { code: err.code, remoteAddress: socket.remoteAddress });
      if (err.code !== "ECONNRESET" && socket.writable && socket.bytesWritten === 0) {
        const status = REFUSALS[err.code ?? ""] ?? "400 Bad Request";
        socket.write(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      }
    } catch {
      // Nothing more to tell this client; the socket closes below.
    } finally {
      socket.destroy();
    }
  });
  return server;
}
