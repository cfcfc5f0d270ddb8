import { type AppItem, appKey } from "../apps/entity.ts";
import { type DeploymentItem, deploymentKey, type LogItem, logSk } from "../deployments/entity.ts";
import { ConditionFailedError } from "../errors.ts";
import type { Deps } from "../ports.ts";
import { cond } from "../store/store.ts";
import type { UserItem } from "../users/entity.ts";
import { channelPk, logMessages, type SubscriptionItem, subscriptionKey } from "./publish.ts";

export type Channel = { kind: "deployment"; id: string } | { kind: "app"; id: string } | { kind: "logs" };

export function parseChannel(channel: string): Channel | undefined {
  if (channel === "logs:all") return { kind: "logs" };
  const m = /^(deployment|app):([A-Za-z0-9_-]{1,64})$/.exec(channel);
  if (!m) return undefined;
  return { kind: m[1] as "deployment" | "app", id: m[2] as string };
}

/** Who may read what: a deployment or app of their own; `logs:all` for admins. */
export async function mayRead(deps: Pick<Deps, "store">, user: UserItem, channel: Channel): Promise<boolean> {
  switch (channel.kind) {
    case "logs":
      return user.role === "admin";
    case "app":
      return (await deps.store.get<AppItem>(appKey(user.id, channel.id))) !== undefined;
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
  };
  await deps.store.put(item);
  if (channelName.startsWith("deployment:")) await replay(deps, item, channelName.slice("deployment:".length));
}

/**
 * Sends a deployment's stored lines after the subscriber's `since`, then marks
 * the subscription live. Lines are in the table before they are published, and
 * every range sent during the replay is claimed on the subscription
 * (`sentUpTo`, conditional), as the live publisher does (publish.ts), so the
 * seam between backlog and live has no gap and no duplicate.
 */
async function replay(deps: Deps, sub: SubscriptionItem, deploymentId: string): Promise<void> {
  let sentUpTo = sub.sentUpTo ?? 0;
  for (let round = 0; round < 10_000; round++) {
    const page = await deps.store.query<LogItem>({
      pk: `DEP#${deploymentId}`,
      sk: { between: [logSk(sentUpTo + 1), logSk(9_999_999_999)] },
      limit: 500,
    });
    const key = subscriptionKey(sub.connectionId, sub.channel);
    // Only the contiguous run after sentUpTo: a batch still being written can leave holes
    // in the table, and its lines reach this subscriber when that batch is published.
    const run = page.items.filter((item, i) => item.seq === sentUpTo + 1 + i);
    if (run.length === 0) {
      try {
        await deps.store.update(key, { set: { live: true }, condition: cond.eq("sentUpTo", sentUpTo) });
        return;
      } catch (err) {
        if (!(err instanceof ConditionFailedError)) throw err;
        sentUpTo = ((await deps.store.get<SubscriptionItem>(key))?.sentUpTo as number | undefined) ?? sentUpTo;
        continue;
      }
    }
    const last = run.at(-1)?.seq ?? sentUpTo;
    try {
      await deps.store.update(key, { set: { sentUpTo: last }, condition: cond.eq("sentUpTo", sentUpTo) });
    } catch (err) {
      if (!(err instanceof ConditionFailedError)) throw err;
      sentUpTo = ((await deps.store.get<SubscriptionItem>(key))?.sentUpTo as number | undefined) ?? sentUpTo;
      continue;
    }
    const lines = run.map(({ seq, ts, stream, line }) => ({ seq, ts, stream, line }));
    for (const message of logMessages(deploymentId, lines)) {
      if ((await deps.broadcaster.post(sub.connectionId, message)) === "gone") return;
    }
    sentUpTo = last;
  }
}
