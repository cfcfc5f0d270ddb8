import type { Key } from "../store/store.ts";

/** API Gateway closes WebSocket connections after 2 hours; the item lives as long. */
export const CONNECTION_TTL_SECONDS = 2 * 60 * 60;

export type ConnectionItem = Key & {
  entity: "connection";
  connectionId: string;
  userId: string | null;
  connectedAt: number;
  expiresAt: number;
  /** A user's connections (index gsi1), to close them on logout, disable or demotion. */
  gsi1pk?: string;
  gsi1sk?: string;
};

export const userConnectionsPk = (userId: string) => `USER#${userId}#CONNS`;

export const connectionKey = (connectionId: string): Key => ({ pk: `CONN#${connectionId}`, sk: "CONN" });

export function connectionItem(connectionId: string, userId: string | null, now = Date.now()): ConnectionItem {
  return {
    ...connectionKey(connectionId),
    entity: "connection",
    connectionId,
    userId,
    connectedAt: now,
    expiresAt: Math.floor(now / 1000) + CONNECTION_TTL_SECONDS,
    ...(userId ? { gsi1pk: userConnectionsPk(userId), gsi1sk: connectionId } : {}),
  };
}
