import type { Scope } from "../auth/api-token-entity.ts";
import { socketMaySubscribe, socketRole } from "../auth/scopes.ts";
import { authenticate } from "../auth/tokens.ts";
import { HoistError } from "../errors.ts";
import { cancelExec, startExec } from "../operate/exec.ts";
import type { Deps } from "../ports.ts";
import { type UserItem, userKeys } from "../users/entity.ts";
import { type ConnectionItem, connectionItem, connectionKey } from "./entity.ts";
import { ClientMessageSchema, type ServerMessage } from "./messages.ts";
import { dropConnection, subscriptionKey } from "./publish.ts";
import { mayRead, parseChannel, subscribe } from "./subscribe.ts";

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

/**
 * `$connect` (the access token from `?token=` is verified before the socket
 * opens), `$disconnect`, and `$default` routed by `action`, for both runtimes.
 */
export function createWsHandler(deps: Deps) {
  const reply = (connectionId: string, message: ServerMessage) => deps.broadcaster.post(connectionId, message);

  async function connect(event: WsEvent): Promise<WsResult> {
    const token = event.queryStringParameters?.token;
    if (!token) return { statusCode: 401, body: "Missing ?token=" };
    try {
      const { user, apiToken } = await authenticate(deps, token);
      // A socket opened with an API token keeps its scopes: they decide what it may subscribe to.
      const scopes = apiToken ? { apiTokenId: apiToken.id, scopes: apiToken.scopes } : {};
      await deps.store.put({ ...connectionItem(event.requestContext.connectionId, user.id), ...scopes });
      return { statusCode: 200 };
    } catch (err) {
      if (err instanceof HoistError && err.status === 401) return { statusCode: 401, body: "Unauthorized" };
      throw err;
    }
  }

  async function message(event: WsEvent): Promise<WsResult> {
    const { connectionId } = event.requestContext;
    const raw = event.isBase64Encoded ? Buffer.from(event.body ?? "", "base64").toString("utf8") : (event.body ?? "");
    const error = async (text: string) => {
      await reply(connectionId, { type: "error", message: text });
      return { statusCode: 200 };
    };
    if (Buffer.byteLength(raw) > MAX_MESSAGE_BYTES) return error(`Message larger than ${MAX_MESSAGE_BYTES} bytes`);
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      return error("Messages are JSON objects with an action");
    }
    const parsed = ClientMessageSchema.safeParse(json);
    if (!parsed.success) {
      const fields = parsed.error.issues.map((i) => i.path.join(".")).filter(Boolean);
      const which = fields.length > 0 ? ` (invalid: ${[...new Set(fields)].join(", ")})` : "";
      return error(`Unknown or invalid message${which}; actions are subscribe, unsubscribe, ping, exec, exec-cancel`);
    }
    const msg = parsed.data;
    if (msg.action === "ping") {
      await reply(connectionId, { type: "pong", ts: Date.now() });
      return { statusCode: 200 };
    }

    const connection = await deps.store.get<ConnectionItem & { scopes?: Scope[] }>(connectionKey(connectionId));
    if (!connection?.userId) return error("Not connected");
    if (msg.action === "exec" || msg.action === "exec-cancel") {
      const refused =
        msg.action === "exec"
          ? await startExec(deps, { connectionId, userId: connection.userId, scopes: connection.scopes }, msg)
          : await cancelExec(deps, connectionId, msg.id);
      if (refused) await reply(connectionId, { type: "error", id: msg.id, message: refused });
      return { statusCode: 200 };
    }
    if (msg.action === "unsubscribe") {
      await deps.store.delete(subscriptionKey(connectionId, msg.channel));
      await reply(connectionId, { type: "unsubscribed", channel: msg.channel });
      return { statusCode: 200 };
    }
    const channel = parseChannel(msg.channel);
    if (!channel)
      return error(
        `Unknown channel ${msg.channel}; use deployment:<id>, app:<id>, app-logs:<appId>, server:<id>, usage:<userId> or logs:all`,
      );
    // The user is read again: a role change or a disable takes effect on the next subscribe.
    const user = await deps.store.get<UserItem>(userKeys.user(connection.userId));
    if (
      !user ||
      user.disabled ||
      !socketMaySubscribe(connection.scopes, user.role, msg.channel) ||
      !(await mayRead(deps, { ...user, role: socketRole(connection.scopes, user.role) }, channel))
    ) {
      return error(`You may not subscribe to ${msg.channel}`);
    }
    await reply(connectionId, { type: "subscribed", channel: msg.channel });
    await subscribe(
      deps,
      { connectionId, userId: user.id, expiresAt: connection.expiresAt },
      msg.channel,
      msg.since ?? 0,
    );
    return { statusCode: 200 };
  }

  return async function handle(event: WsEvent): Promise<WsResult> {
    switch (event.requestContext.routeKey) {
      case "$connect":
        return connect(event);
      case "$disconnect":
        await dropConnection(deps, event.requestContext.connectionId);
        return { statusCode: 200 };
      default:
        return message(event);
    }
  };
}
