import type { Deps } from "../ports.ts";
import { connectionItem, connectionKey } from "./entity.ts";
import { ClientMessageSchema, type ServerMessage } from "./messages.ts";

/** The subset of API Gateway's WebSocket Lambda event the handler reads; the embedded gateway builds the same. */
export interface WsEvent {
  requestContext: { routeKey: string; connectionId: string; eventType?: string };
  queryStringParameters?: Record<string, string | undefined> | null;
  headers?: Record<string, string | undefined> | null;
  body?: string | null;
  isBase64Encoded?: boolean;
}

export interface WsResult {
  statusCode: number;
  body?: string;
}

const MAX_MESSAGE_BYTES = 32 * 1024;

/** `$connect`, `$disconnect` and `$default` (routed by `action`) for both runtimes. */
export function createWsHandler(deps: Deps) {
  const reply = (connectionId: string, message: ServerMessage) => deps.broadcaster.post(connectionId, message);

  return async function handle(event: WsEvent): Promise<WsResult> {
    const { routeKey, connectionId } = event.requestContext;
    switch (routeKey) {
      case "$connect":
        await deps.store.put(connectionItem(connectionId, null));
        return { statusCode: 200 };
      case "$disconnect":
        await deps.store.delete(connectionKey(connectionId));
        return { statusCode: 200 };
      default: {
        const raw = event.isBase64Encoded
          ? Buffer.from(event.body ?? "", "base64").toString("utf8")
          : (event.body ?? "");
        if (Buffer.byteLength(raw) > MAX_MESSAGE_BYTES) {
          await reply(connectionId, { type: "error", message: `Message larger than ${MAX_MESSAGE_BYTES} bytes` });
          return { statusCode: 200 };
        }
        let json: unknown;
        try {
          json = JSON.parse(raw);
        } catch {
          await reply(connectionId, { type: "error", message: "Messages are JSON objects with an action" });
          return { statusCode: 200 };
        }
        const parsed = ClientMessageSchema.safeParse(json);
        if (!parsed.success) {
          const actions = "subscribe, unsubscribe, ping";
          await reply(connectionId, { type: "error", message: `Unknown or invalid message; actions are ${actions}` });
          return { statusCode: 200 };
        }
        const message = parsed.data;
        if (message.action === "ping") {
          await reply(connectionId, { type: "pong", ts: Date.now() });
        } else {
          await reply(connectionId, { type: "error", message: `Channel ${message.channel} is not available` });
        }
        return { statusCode: 200 };
      }
    }
  };
}
