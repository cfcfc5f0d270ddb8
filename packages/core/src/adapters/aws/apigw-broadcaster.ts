import {
  ApiGatewayManagementApiClient,
  DeleteConnectionCommand,
  PostToConnectionCommand,
} from "@aws-sdk/client-apigatewaymanagementapi";
import type { Broadcaster, PostResult } from "../../ports.ts";

/** The subset of ApiGatewayManagementApiClient this adapter uses, so tests can inject a recorder. */
export interface ConnectionPoster {
  send(
    command: PostToConnectionCommand | DeleteConnectionCommand,
    options?: { abortSignal?: AbortSignal },
  ): Promise<unknown>;
}

/**
 * The Broadcaster port: PostToConnection on API Gateway's @connections API
 * (on AWS, or the embedded WebSocket gateway's). A connection that has gone
 * away (410 Gone) is reported as "gone" so the caller can delete it; any
 * other error is thrown. A post that hangs is abandoned after `timeoutMs`,
 * so a stuck connection holds up nobody for long.
 */
export class ApiGatewayBroadcaster implements Broadcaster {
  private readonly client: ConnectionPoster;
  private readonly timeoutMs: number;

  constructor(opts: { endpoint: string; client?: ConnectionPoster; timeoutMs?: number }) {
    this.client = opts.client ?? new ApiGatewayManagementApiClient({ endpoint: opts.endpoint });
    this.timeoutMs = opts.timeoutMs ?? 5000;
  }

  async post(connectionId: string, message: unknown): Promise<PostResult> {
    try {
      await this.client.send(
        new PostToConnectionCommand({
          ConnectionId: connectionId,
          Data: new TextEncoder().encode(JSON.stringify(message)),
        }),
        { abortSignal: AbortSignal.timeout(this.timeoutMs) },
      );
      return "sent";
    } catch (err) {
      if (isGone(err)) return "gone";
      throw err;
    }
  }

  async close(connectionId: string): Promise<void> {
    try {
      await this.client.send(new DeleteConnectionCommand({ ConnectionId: connectionId }), {
        abortSignal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      if (!isGone(err)) throw err;
    }
  }
}

function isGone(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return err.name === "GoneException" || status === 410;
}
