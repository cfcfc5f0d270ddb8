import { type AppItem, appKey } from "../apps/entity.ts";
import { type DeploymentItem, deploymentKey } from "../deployments/entity.ts";
import { ensureTail } from "../operate/tail-lease.ts";
import type { Deps } from "../ports.ts";
import { type ServerItem, serverKey } from "../servers/entity.ts";
import type { UserItem } from "../users/entity.ts";
import { replayLog } from "./log-fanout.ts";
import { channelPk, type SubscriptionItem, subscriptionKey } from "./publish.ts";

export type Channel =
  | { kind: "deployment"; id: string }
  | { kind: "app"; id: string }
  /** A running app's container logs (`docker compose logs -f`), followed while subscribed. */
  | { kind: "app-logs"; id: string }
  /** A server's metrics points, one per status sweep. */
  | { kind: "server"; id: string }
  | { kind: "usage"; id: string }
  | { kind: "logs" };

export function parseChannel(channel: string): Channel | undefined {
  if (channel === "logs:all") return { kind: "logs" };
  const m = /^(deployment|app|app-logs|server|usage):([A-Za-z0-9_-]{1,64})$/.exec(channel);
  if (!m) return undefined;
  return { kind: m[1] as Exclude<Channel["kind"], "logs">, id: m[2] as string };
}

/** Who may read what: a deployment or app of their own, their own usage (admins: anyone's); `logs:all` for admins. */
export async function mayRead(deps: Pick<Deps, "store">, user: UserItem, channel: Channel): Promise<boolean> {
  switch (channel.kind) {
    case "logs":
      return user.role === "admin";
    case "usage":
      return channel.id === user.id || user.role === "admin";
    case "app":
    case "app-logs":
      return (await deps.store.get<AppItem>(appKey(user.id, channel.id))) !== undefined;
    case "server":
      return (await deps.store.get<ServerItem>(serverKey(user.id, channel.id))) !== undefined;
    case "deployment":
      return (await deps.store.get<DeploymentItem>(deploymentKey(channel.id)))?.ownerId === user.id;
  }
}

export async function subscribe(
  deps: Deps,
  connection: { connectionId: string; userId: string; expiresAt: number },
  channelName: string,
  since: number,
): Promise<void> {
  const item: SubscriptionItem = {
    ...subscriptionKey(connection.connectionId, channelName),
    entity: "subscription",
    connectionId: connection.connectionId,
    channel: channelName,
    userId: connection.userId,
    expiresAt: connection.expiresAt,
    gsi1pk: channelPk(channelName),
    gsi1sk: connection.connectionId,
    sentUpTo: since,
    live: !channelName.startsWith("deployment:"),
    subscribedAt: Date.now(),
  };
  await deps.store.put(item);
  if (channelName.startsWith("deployment:")) await replayLog(deps, item, channelName.slice("deployment:".length));
  // The app's container logs are followed by one tail job while the channel has subscribers (operate/tail.ts).
  if (channelName.startsWith("app-logs:"))
    await ensureTail(deps, connection.userId, channelName.slice("app-logs:".length)).catch((err: unknown) =>
      deps.logger.error("could not start the app log tail", { channel: channelName, error: err }),
    );
}
