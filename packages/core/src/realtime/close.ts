import type { Deps } from "../ports.ts";
import { queryAll } from "../store/store.ts";
import { type ConnectionItem, userConnectionsPk } from "./entity.ts";
import { channelPk, type SubscriptionItem } from "./publish.ts";

type CloseDeps = Pick<Deps, "store" | "broadcaster" | "logger">;

/**
 * Closes a user's WebSocket connections, telling each why first. The
 * gateway's `$disconnect` then removes the connection and its subscriptions.
 * Best effort per connection: one that fails to close is logged, the rest go on.
 */
export async function closeUserSockets(deps: CloseDeps, userId: string, reason: string): Promise<number> {
  const connections = await queryAll<ConnectionItem>(deps.store, { index: "gsi1", pk: userConnectionsPk(userId) });
  await Promise.all(connections.map((c) => closeOne(deps, c.connectionId, reason)));
  return connections.length;
}

/** Closes the user's connections that follow `channel` (an admin's `logs:all` after a demotion). */
export async function closeUserSocketsOn(deps: CloseDeps, userId: string, channel: string, reason: string) {
  const subs = await queryAll<SubscriptionItem>(deps.store, { index: "gsi1", pk: channelPk(channel) });
  const mine = subs.filter((s) => s.userId === userId);
  await Promise.all(mine.map((s) => closeOne(deps, s.connectionId, reason)));
  return mine.length;
}

async function closeOne(deps: CloseDeps, connectionId: string, reason: string): Promise<void> {
  try {
    await deps.broadcaster.post(connectionId, { type: "error", message: reason });
    await deps.broadcaster.close(connectionId);
  } catch (err) {
    deps.logger.warn("could not close a WebSocket connection", { connectionId, error: err });
  }
}
