import type { Deps, Job } from "../ports.ts";
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

/** The job that wakes a queued deployment's app (named, so the worker reads the app alongside it). */
export const deployJobOf = (dep: DeploymentItem): Job => ({
  type: "deploy",
  deploymentId: dep.id,
  ownerId: dep.ownerId,
  appId: dep.appId,
});

/**
 * Moves a queued deployment on (to running, cancelled or failed) and drops its
 * marker, atomically. Throws ConditionFailedError when it was no longer queued.
 */
export async function leaveQueue(
  deps: Pick<Deps, "store">,
  dep: DeploymentItem,
  set: Partial<DeploymentItem>,
): Promise<DeploymentItem> {
  await deps.store.transact(leaveQueueOps(dep, set));
  return { ...dep, ...set };
}

/** leaveQueue's writes, for a transaction of the caller's (the first is conditional on `queued`). */
export function leaveQueueOps(dep: DeploymentItem, set: Partial<DeploymentItem>): TransactOp[] {
  return [
    { update: { ...deploymentKey(dep.id), set, condition: cond.eq("status", "queued") } },
    { delete: queuedKey(dep) },
  ];
}

/** The app's queued deployments, oldest first (a consistent Query of the markers). */
export async function queuedDeployments(deps: Pick<Deps, "store">, appId: string): Promise<QueuedItem[]> {
  return queryAll<QueuedItem>(deps.store, { pk: queuedPk(appId), consistent: true });
}

/**
 * The app's oldest queued deployment. `known`: a deployment being read at the
 * same time (consistently); when it is the oldest, that read is used instead of a second one.
 */
export async function oldestQueued(
  deps: Pick<Deps, "store">,
  appId: string,
  known?: { id: string; read: Promise<DeploymentItem | undefined> },
): Promise<DeploymentItem | undefined> {
  const page = await deps.store.query<QueuedItem>({ pk: queuedPk(appId), limit: 1, consistent: true });
  const marker = page.items[0];
  if (!marker) return undefined;
  if (marker.deploymentId === known?.id) {
    const dep = await known.read;
    // Otherwise it left the queue around the read (or the marker is stale): look again, reading on our own.
    return dep?.status === "queued" ? dep : oldestQueued(deps, appId);
  }
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
