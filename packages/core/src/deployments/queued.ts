import type { Deps } from "../ports.ts";
import { cond, queryAll, type TransactOp } from "../store/store.ts";
import {
  allQueuedPk,
  type DeploymentItem,
  deploymentKey,
  type QueuedItem,
  queuedKey,
  queuedPk,
  sortOf,
} from "./entity.ts";

/** The writes that queue a deployment: the item and its marker, in one transaction. */
export function queueOps(item: DeploymentItem): TransactOp[] {
  const marker: QueuedItem = {
    ...queuedKey(item),
    entity: "queued-deployment",
    deploymentId: item.id,
    appId: item.appId,
    ownerId: item.ownerId,
    gsi1pk: allQueuedPk,
    gsi1sk: sortOf(item.queuedAt, item.id),
  };
  return [
    { put: item, condition: cond.notExists() },
    { put: marker, condition: cond.notExists() },
  ];
}

/**
 * Moves a queued deployment on (to running, cancelled or failed) and drops its
 * marker, atomically. Throws ConditionFailedError when it was no longer queued.
 */
export async function leaveQueue(
  deps: Pick<Deps, "store">,
  dep: DeploymentItem,
  set: Partial<DeploymentItem>,
): Promise<DeploymentItem> {
  await deps.store.transact([
    { update: { ...deploymentKey(dep.id), set, condition: cond.eq("status", "queued") } },
    { delete: queuedKey(dep) },
  ]);
  return { ...dep, ...set };
}

/** The app's queued deployments, oldest first (a consistent Query of the markers). */
export async function queuedDeployments(deps: Pick<Deps, "store">, appId: string): Promise<QueuedItem[]> {
  return queryAll<QueuedItem>(deps.store, { pk: queuedPk(appId), consistent: true });
}

export async function oldestQueued(deps: Pick<Deps, "store">, appId: string): Promise<DeploymentItem | undefined> {
  const page = await deps.store.query<QueuedItem>({ pk: queuedPk(appId), limit: 1, consistent: true });
  const marker = page.items[0];
  if (!marker) return undefined;
  const dep = await deps.store.get<DeploymentItem>(deploymentKey(marker.deploymentId), { consistent: true });
  if (dep?.status === "queued") return dep;
  // A marker whose deployment is gone (its app was deleted with it): drop it and look again.
  await deps.store.delete({ pk: marker.pk, sk: marker.sk });
  return oldestQueued(deps, appId);
}

/** Apps with a deployment queued before `before` (epoch ms), each once. */
export async function appsQueuedBefore(
  deps: Pick<Deps, "store">,
  before: number,
): Promise<{ ownerId: string; appId: string }[]> {
  const markers = await queryAll<QueuedItem>(deps.store, {
    index: "gsi1",
    pk: allQueuedPk,
    sk: { lt: sortOf(before, "") },
  });
  const apps = new Map(markers.map((m) => [m.appId, { ownerId: m.ownerId, appId: m.appId }]));
  return [...apps.values()];
}
