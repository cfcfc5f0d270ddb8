import type { LogLine } from "../deployments/entity.ts";
import type { Deps } from "../ports.ts";
import type { Key } from "../store/store.ts";
import { queryAll } from "../store/store.ts";
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
  /** Deployment channels: the last log seq sent to this connection (realtime/log-fanout.ts). */
  sentUpTo?: number;
  /** Deployment channels: the replay is done and waits for the deploy worker to take over. */
  ready?: boolean;
  /** Every new message goes to it (deployment channels: once taken over, or once the run's log is complete). */
  live?: boolean;
  /** When this subscription was made (a re-subscribe on the same connection is a new one). */
  subscribedAt?: number;
  gsi1pk: string;
  gsi1sk: string;
};

/**
 * API Gateway takes WebSocket messages of up to 128 KB in frames of 32 KB:
 * log messages stay within one frame (a single line longer than that travels
 * alone, still far under the message limit).
 */
export const MAX_MESSAGE_BYTES = 32 * 1024;
/** Connections posted to at once by one fan-out. */
const CONCURRENCY = 32;

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
): Promise<void> {
  if (messages.length === 0) return;
  await forEachBounded(deps, await subscribers(deps, channel), async (sub) => {
    for (const message of messages) {
      if ((await deps.broadcaster.post(sub.connectionId, message)) === "gone") {
        await dropConnection(deps, sub.connectionId);
        return;
      }
    }
  });
}

/**
 * Runs `post` for every connection, {@link CONCURRENCY} at a time, so one
 * slow or dead connection never delays the others; a failure is logged and
 * stays with its connection.
 */
export async function forEachBounded<T extends string | { connectionId: string }>(
  deps: Pick<Deps, "logger">,
  targets: T[],
  post: (target: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < targets.length; i = next++) {
      const target = targets[i] as T;
      await post(target).catch((err: unknown) =>
        deps.logger.warn("websocket post failed", {
          connectionId: typeof target === "string" ? target : target.connectionId,
          error: err,
        }),
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, targets.length) }, worker));
}

/** Splits log lines into `log` messages that each fit one WebSocket frame (see {@link MAX_MESSAGE_BYTES}). */
export function logMessages(deploymentId: string, lines: LogLine[]) {
  const messages: { type: "log"; deploymentId: string; lines: LogLine[] }[] = [];
  let batch: LogLine[] = [];
  let size = 0;
  for (const line of lines) {
    const bytes = jsonBytes(line.line) + 64;
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

/** What JSON escapes: the quote, the backslash, control characters, and surrogates (a lone one is written `\uXXXX`). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what JSON escapes
const ESCAPED = /["\\\u0000-\u001f\ud800-\udfff]/;

/**
 * The UTF-8 size of `text` as a JSON string. Escaping can grow a line up to
 * sixfold (control characters), so such a line is measured as it will travel;
 * any other is its own size plus the quotes, without a copy.
 */
export function jsonBytes(text: string): number {
  return ESCAPED.test(text) ? Buffer.byteLength(JSON.stringify(text)) : Buffer.byteLength(text) + 2;
}
