import type { Deps } from "../ports.ts";
import type { Key } from "../store/store.ts";
import { cond, queryAll } from "../store/store.ts";
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
  /** Deployment channels: the last log seq sent to this connection, while replaying. */
  sentUpTo?: number;
  /** Replay done: the publisher sends every new line without claiming. */
  live?: boolean;
  gsi1pk: string;
  gsi1sk: string;
};

/** API Gateway refuses WebSocket messages over 128 KB; stay well under it. */
export const MAX_MESSAGE_BYTES = 120 * 1024;
const CONCURRENCY = 16;

/** Every subscriber of a channel (a Query on the channel index, never a Scan). */
export async function subscribers(deps: Pick<Deps, "store">, channel: string): Promise<SubscriptionItem[]> {
  return queryAll<SubscriptionItem>(deps.store, { index: "gsi1", pk: channelPk(channel) });
}

/** Forgets a connection and its subscriptions (it answered 410 Gone, or disconnected). */
export async function dropConnection(deps: Pick<Deps, "store">, connectionId: string): Promise<void> {
  const subs = await queryAll<SubscriptionItem>(deps.store, { pk: `CONN#${connectionId}`, sk: { beginsWith: "SUB#" } });
  await Promise.all(subs.map((s) => deps.store.delete(subscriptionKey(connectionId, s.channel))));
  await deps.store.delete(connectionKey(connectionId));
}

/**
 * Posts `messages` (in order) to every subscriber of `channel`, connections in
 * parallel with bounded concurrency, so one slow or dead connection never
 * delays the others; connections that answer 410 Gone are forgotten.
 * `forSubscriber` may tailor (or withhold, with []) the messages per subscriber.
 */
export async function publish(
  deps: Pick<Deps, "store" | "broadcaster" | "logger">,
  channel: string,
  messages: unknown[],
  forSubscriber?: (sub: SubscriptionItem) => Promise<unknown[]>,
): Promise<void> {
  if (messages.length === 0) return;
  const targets = await subscribers(deps, channel);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < targets.length; i = next++) {
      const sub = targets[i] as SubscriptionItem;
      try {
        for (const message of forSubscriber ? await forSubscriber(sub) : messages) {
          if ((await deps.broadcaster.post(sub.connectionId, message)) === "gone") {
            await dropConnection(deps, sub.connectionId);
            break;
          }
        }
      } catch (err) {
        deps.logger.warn("websocket post failed", { connectionId: sub.connectionId, channel, error: err });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, targets.length) }, worker));
}

type Line = { seq: number; ts: number; stream: string; line: string };

/**
 * Publishes a flush of log lines to `deployment:<id>`. A subscriber still
 * replaying its backlog gets only the lines right after what it was sent
 * (claimed on its subscription), or none, leaving them to its replay, which
 * reads them from the table; a live subscriber gets all of them.
 */
export async function publishLines(
  deps: Pick<Deps, "store" | "broadcaster" | "logger">,
  deploymentId: string,
  lines: Line[],
) {
  const first = lines[0]?.seq ?? 0;
  const last = lines.at(-1)?.seq ?? 0;
  await publish(deps, `deployment:${deploymentId}`, logMessages(deploymentId, lines), async (indexed) => {
    // The channel index is eventually consistent: once live, a subscription stays live with its
    // final sentUpTo, but a replaying one is read again from the table before deciding.
    const sub = indexed.live
      ? indexed
      : await deps.store.get<SubscriptionItem>(subscriptionKey(indexed.connectionId, indexed.channel));
    if (!sub) return [];
    const sent = sub.sentUpTo ?? 0;
    if (sub.live)
      return logMessages(
        deploymentId,
        lines.filter((l) => l.seq > sent),
      );
    if (sent < first - 1 || sent >= last) return [];
    try {
      await deps.store.update(subscriptionKey(sub.connectionId, sub.channel), {
        set: { sentUpTo: last },
        condition: cond.eq("sentUpTo", sent),
      });
    } catch {
      return []; // the replay moved on meanwhile and will read these from the table
    }
    return logMessages(
      deploymentId,
      lines.filter((l) => l.seq > sent),
    );
  });
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
