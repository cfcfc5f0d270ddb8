import { ignoreConditionFailed } from "../errors.ts";
import { cond, type Key, type Page, type Store } from "../store/store.ts";
import { pad } from "../users/entity.ts";
import type { MetricsPoint } from "./metrics.ts";

/** Points are kept a week (the table's TTL attribute `expiresAt`, seconds). */
export const METRICS_TTL_SECONDS = 7 * 24 * 60 * 60;

/**
 * One metrics point of a server, written by the status sweep: a partition per
 * server (under its owner, so tenancy is in the key too), sorted by time.
 */
export type MetricsPointItem = Key &
  MetricsPoint & {
    entity: "server-metrics";
    version: 1;
    ownerId: string;
    serverId: string;
    expiresAt: number;
  };

const partition = (ownerId: string, serverId: string) => `METRICS#${ownerId}#${serverId}`;
const sortKey = (at: number) => `AT#${pad(Math.max(0, Math.floor(at)))}`;

export const metricsKeys = {
  point: (ownerId: string, serverId: string, at: number): Key => ({
    pk: partition(ownerId, serverId),
    sk: sortKey(at),
  }),
};

const toPoint = (i: MetricsPoint): MetricsPoint => ({
  cpuPercent: i.cpuPercent,
  memory: i.memory,
  disks: i.disks,
  load: i.load,
  containers: i.containers,
  at: i.at,
});

export const metricsPoints = {
  /** Stores a point; a point already there at the same millisecond stays (a sweep run twice is harmless). */
  async put(store: Pick<Store, "put">, ownerId: string, serverId: string, point: MetricsPoint): Promise<void> {
    const item: MetricsPointItem = {
      ...metricsKeys.point(ownerId, serverId, point.at),
      entity: "server-metrics",
      version: 1,
      ownerId,
      serverId,
      ...toPoint(point),
      expiresAt: Math.floor(point.at / 1000) + METRICS_TTL_SECONDS,
    };
    await store.put(item, { condition: cond.notExists() }).catch(ignoreConditionFailed);
  },

  /** A server's points with `from ≤ at ≤ to`, oldest first, a page at a time (expired ones never show). */
  async between(
    store: Pick<Store, "query">,
    ownerId: string,
    serverId: string,
    window: { from: number; to: number; limit: number; cursor?: string },
  ): Promise<Page<MetricsPoint>> {
    const page = await store.query<MetricsPointItem>({
      pk: partition(ownerId, serverId),
      sk: { between: [sortKey(window.from), sortKey(window.to)] },
      limit: window.limit,
      cursor: window.cursor,
    });
    return { items: page.items.map(toPoint), nextCursor: page.nextCursor };
  },
};
