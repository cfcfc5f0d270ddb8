import type { Key } from "../store/store.ts";
import { pad } from "../users/entity.ts";

export type DeploymentStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled";
export type Trigger = "manual" | "push" | "ci-success" | "rollback";
export const FINISHED: DeploymentStatus[] = ["succeeded", "failed", "cancelled"];

export type DeploymentItem = Key & {
  entity: "deployment";
  id: string;
  ownerId: string;
  appId: string;
  status: DeploymentStatus;
  trigger: Trigger;
  ref: string | null;
  commitSha: string | null;
  commitMessage: string | null;
  author: string | null;
  queuedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  durationMs: number | null;
  exitCode: number | null;
  error: string | null;
  redeployOf: string | null;
  /** Lines written so far (the next line's seq is `logLines + 1`). */
  logLines: number;
  logTruncated: boolean;
  /** The worker running it renews this while alive; past it, the run is presumed dead. */
  leaseUntil: number | null;
  cancelRequested: boolean;
  gsi1pk: string;
  gsi1sk: string;
  gsi2pk: string;
  gsi2sk: string;
};

/** The public shape (API.md § Deployments). */
export type Deployment = Omit<
  DeploymentItem,
  | "pk"
  | "sk"
  | "entity"
  | "ownerId"
  | "logLines"
  | "logTruncated"
  | "leaseUntil"
  | "cancelRequested"
  | `gsi${1 | 2}${"pk" | "sk"}`
>;

export type LogStream = "stdout" | "stderr" | "system";
export type LogLine = {
  seq: number;
  ts: number;
  stream: LogStream;
  line: string;
};

export const deploymentKey = (id: string): Key => ({ pk: `DEP#${id}`, sk: "DEP" });
export const appDeploymentsPk = (appId: string) => `APP#${appId}#DEPS`;
export const ownerDeploymentsPk = (ownerId: string) => `OWNER#${ownerId}#DEPS`;
/**
 * An app's queued deployments, and only those: one marker item each on the
 * table's own key, so the worker reads them consistently and never filters.
 * Written with the deployment; deleted in the transaction that moves it on.
 */
export const queuedPk = (appId: string) => `APP#${appId}#QUEUED`;
export const queuedKey = (d: Pick<DeploymentItem, "appId" | "queuedAt" | "id">): Key => ({
  pk: queuedPk(d.appId),
  sk: sortOf(d.queuedAt, d.id),
});
/** Every app's queued markers, oldest first (a sparse index: only markers carry it), for the stale-queue sweep. */
export const allQueuedPk = "DEPLOYMENTS#QUEUED";
export type QueuedItem = Key & {
  entity: "queued-deployment";
  deploymentId: string;
  appId: string;
  ownerId: string;
  gsi1pk: string;
  gsi1sk: string;
};
export const sortOf = (queuedAt: number, id: string) => `${pad(queuedAt)}#${id}`;

export const toDeployment = (d: DeploymentItem): Deployment => ({
  id: d.id,
  appId: d.appId,
  status: d.status,
  trigger: d.trigger,
  ref: d.ref,
  commitSha: d.commitSha,
  commitMessage: d.commitMessage,
  author: d.author,
  queuedAt: d.queuedAt,
  startedAt: d.startedAt,
  finishedAt: d.finishedAt,
  durationMs: d.durationMs,
  exitCode: d.exitCode,
  error: d.error,
  redeployOf: d.redeployOf,
});
