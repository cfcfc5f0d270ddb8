import type { Deps } from "../ports.ts";
import type { Key } from "../store/store.ts";
import { connectionKey } from "./entity.ts";

/** A connection's subscription to a channel: on the connection's partition, indexed by channel (gsi1). */
export const subscriptionKey = (connectionId: string, channel: string): Key => ({
  pk: `CONN#${connectionId}`,
  sk: `SUB#${channel}`,
});
export const channelPk = (channel: string) => `CHAN#${channel}`;

export type SubscriptionItem = Key & {
  entity: "subscription";
  connectionId: string;
  channel: string;
  userId: string;
  expiresAt: number;
  gsi1pk: string;
  gsi1sk: string;
};

/** API Gateway refuses WebSocket messages over 128 KB; stay well under it. */
export const MAX_MESSAGE_BYTES = 120 * 1024;
const CONCURRENCY = 16;

/** Every live subscriber of a channel (a Query on the channel index, never a Scan). */
export async function subscribers(deps: Pick<Deps, "store">, channel: string): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const page: { items: SubscriptionItem[]; nextCursor: string | null } = await deps.store.query<SubscriptionItem>({
      index: "gsi1",
      pk: channelPk(channel),
      limit: 1000,
      cursor,
    });
    ids.push(...page.items.map((s) => s.connectionId));
    cursor = page.nextCursor;
  } while (cursor);
  return ids;
}

/** Forgets a connection and its subscriptions (it answered 410 Gone, or disconnected). */
export async function dropConnection(deps: Pick<Deps, "store">, connectionId: string): Promise<void> {
  let cursor: string | null = null;
  do {
    const page: { items: SubscriptionItem[]; nextCursor: string | null } = await deps.store.query<SubscriptionItem>({
      pk: `CONN#${connectionId}`,
      sk: { beginsWith: "SUB#" },
      limit: 100,
      cursor,
    });
    await Promise.all(page.items.map((s) => deps.store.delete(subscriptionKey(connectionId, s.channel))));
    cursor = page.nextCursor;
  } while (cursor);
  await deps.store.delete(connectionKey(connectionId));
}

/**
 * Posts `messages` (in order) to every subscriber of `channel`, connections in
 * parallel with bounded concurrency, so one slow or dead connection never
 * delays the others; connections that answer 410 Gone are forgotten.
 */
export async function publish(
  deps: Pick<Deps, "store" | "broadcaster" | "logger">,
  channel: string,
  messages: unknown[],
): Promise<void> {
  if (messages.length === 0) return;
  const targets = await subscribers(deps, channel);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < targets.length; i = next++) {
      const connectionId = targets[i] as string;
      try {
        for (const message of messages) {
          if ((await deps.broadcaster.post(connectionId, message)) === "gone") {
            await dropConnection(deps, connectionId);
            break;
          }
        }
      } catch (err) {
        deps.logger.warn("websocket post failed", { connectionId, channel, error: err });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, targets.length) }, worker));
}

/** Splits log lines into `log` messages that each stay under the WebSocket message limit. */
export function logMessages(deploymentId: string, lines: { seq: number; ts: number; stream: string; line: string }[]) {
  const messages: { type: "log"; deploymentId: string; lines: typeof lines }[] = [];
  let batch: typeof lines = [];
  let size = 0;
  for (const line of lines) {
    const bytes = Buffer.byteLength(line.line) + 80;
    if (batch.length > 0 && size + bytes > MAX_MESSAGE_BYTES) {
      messages.push({ type: "log", deploymentId, lines: batch });
      batch = [];
      size = 0;
    }
    batch.push(line);
    size += bytes;
  }
  if (batch.length > 0) messages.push({ type: "log", deploymentId, lines: batch });
  return messages;
}
