import type { Key } from "../store/store.ts";
import { pad } from "../users/entity.ts";
import type { IncidentStatus } from "./state-machine.ts";

/**
 * An incident: a CI workflow failing on a repository + workflow + branch, for
 * one owner (each user who connected the repository has their own incident,
 * so one tenant's acknowledgement never changes another's). At most one is
 * not resolved per owner + repo + workflow + branch: the INCOPEN guard,
 * written and deleted in the same transactions as the status.
 */
export type IncidentItem = Key & {
  entity: "incident";
  id: string;
  ownerId: string;
  status: IncidentStatus;
  title: string;
  repo: string;
  workflowId: number;
  workflowName: string;
  branch: string;
  /** GitHub run ids that failed into this incident, oldest first. */
  runIds: string[];
  lastRunId: string;
  lastRunUrl: string | null;
  openedAt: number;
  acknowledgedAt: number | null;
  resolvedAt: number | null;
  updatedAt: number;
  version: number;
  gsi1pk: string;
  gsi1sk: string;
  gsi2pk: string;
  gsi2sk: string;
};

export type CommentItem = Key & {
  entity: "incident-comment";
  id: string;
  incidentId: string;
  /** `null` for system comments. */
  authorId: string | null;
  kind: "user" | "system";
  body: string;
  createdAt: number;
};

export type GuardItem = Key & { entity: "guard"; incidentId: string; ownerId: string };

export const incidentKey = (id: string): Key => ({ pk: `INC#${id}`, sk: "INC" });
export const ownerIncidentsPk = (ownerId: string) => `OWNER#${ownerId}#INCIDENTS`;
export const ownerRepoIncidentsPk = (ownerId: string, repo: string) =>
  `OWNER#${ownerId}#REPO#${repo.toLowerCase()}#INCIDENTS`;
export const incidentIndex = (ownerId: string, repo: string, openedAt: number, id: string) => ({
  gsi1pk: ownerIncidentsPk(ownerId),
  gsi1sk: `${pad(openedAt)}#${id}`,
  gsi2pk: ownerRepoIncidentsPk(ownerId, repo),
  gsi2sk: `${pad(openedAt)}#${id}`,
});
export const openGuardKey = (ownerId: string, repo: string, workflowId: number, branch: string): Key => ({
  pk: `INCOPEN#${ownerId}#${repo.toLowerCase()}#${workflowId}#${branch}`,
  sk: "GUARD",
});
export const commentKey = (incidentId: string, createdAt: number, id: string): Key => ({
  pk: `INC#${incidentId}`,
  sk: `COMMENT#${pad(createdAt)}#${id}`,
});

export function toIncident(i: IncidentItem) {
  return {
    id: i.id,
    status: i.status,
    title: i.title,
    repo: i.repo,
    workflowId: i.workflowId,
    workflowName: i.workflowName,
    branch: i.branch,
    runIds: i.runIds,
    lastRunId: i.lastRunId,
    lastRunUrl: i.lastRunUrl,
    openedAt: i.openedAt,
    acknowledgedAt: i.acknowledgedAt,
    resolvedAt: i.resolvedAt,
    updatedAt: i.updatedAt,
  };
}
export type Incident = ReturnType<typeof toIncident>;

export const toComment = (c: CommentItem) => ({
  id: c.id,
  incidentId: c.incidentId,
  authorId: c.authorId,
  kind: c.kind,
  body: c.body,
  createdAt: c.createdAt,
});
