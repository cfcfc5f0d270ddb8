import type { Actor } from "../actor.ts";
import { recordAudit } from "../audit/service.ts";
import { ConditionFailedError, ConflictError, NotFoundError } from "../errors.ts";
import { newId } from "../ids.ts";
import type { Deps } from "../ports.ts";
import { type Condition, cond, type TransactOp } from "../store/store.ts";
import { publishToRepoApps } from "../workflow-runs/notify.ts";
import {
  type CommentItem,
  commentKey,
  type GuardItem,
  type Incident,
  type IncidentItem,
  incidentIndex,
  incidentKey,
  openGuardKey,
  ownerIncidentsPk,
  ownerRepoIncidentsPk,
  toComment,
  toIncident,
} from "./entity.ts";
import { assertMove, type IncidentStatus } from "./state-machine.ts";

type IncidentDeps = Pick<Deps, "store" | "broadcaster" | "logger">;

export async function getIncidentItem(deps: Pick<Deps, "store">, ownerId: string, id: string): Promise<IncidentItem> {
  const item = await deps.store.get<IncidentItem>(incidentKey(id), { consistent: true });
  if (item?.entity !== "incident" || item.ownerId !== ownerId) throw new NotFoundError("Incident");
  return item;
}

export async function listIncidents(
  deps: Pick<Deps, "store">,
  ownerId: string,
  q: { status?: IncidentStatus; repo?: string; limit: number; cursor?: string },
) {
  const page = await deps.store.query<IncidentItem>({
    index: q.repo ? "gsi2" : "gsi1",
    pk: q.repo ? ownerRepoIncidentsPk(ownerId, q.repo) : ownerIncidentsPk(ownerId),
    reverse: true,
    limit: q.limit,
    cursor: q.cursor,
    filter: q.status ? cond.eq("status", q.status) : undefined,
  });
  return { items: page.items.map(toIncident), nextCursor: page.nextCursor };
}

const publishIncident = (deps: IncidentDeps, item: IncidentItem, event: string) =>
  publishToRepoApps(deps, item.ownerId, item.repo, item.branch, {
    type: "incident",
    event,
    incident: toIncident(item),
  });

function newComment(incidentId: string, authorId: string | null, body: string, now: number): CommentItem {
  const id = newId("cmt");
  return {
    ...commentKey(incidentId, now, id),
    entity: "incident-comment",
    id,
    incidentId,
    authorId,
    kind: authorId ? "user" : "system",
    body,
    createdAt: now,
  };
}

/**
 * The one way an incident changes status: checks the move against the state
 * machine, then writes it conditional on the status (and version) it read, with
 * the open-guard change and an optional comment in the same transaction.
 * `actor` null: the system (a green CI run).
 */
export async function transitionIncident(
  deps: IncidentDeps,
  ownerId: string,
  id: string,
  to: IncidentStatus,
  actor: Actor | null,
  systemComment?: string,
): Promise<Incident> {
  const before = await getIncidentItem(deps, ownerId, id);
  assertMove(before.status, to);
  const now = Date.now();
  const guard = openGuardKey(ownerId, before.repo, before.workflowId, before.branch);
  const set: Record<string, unknown> = { status: to, updatedAt: now, version: before.version + 1 };
  if (to === "acknowledged") set.acknowledgedAt = now;
  if (to === "resolved") set.resolvedAt = now;
  if (to === "open") Object.assign(set, { acknowledgedAt: null, resolvedAt: null });
  const ops: TransactOp[] = [
    {
      update: {
        ...incidentKey(id),
        set,
        condition: cond.and(cond.eq("status", before.status), cond.eq("version", before.version)),
      },
    },
  ];
  if (to === "resolved")
    ops.push({ delete: guard, condition: cond.or(cond.attrNotExists("pk"), cond.eq("incidentId", id)) });
  if (to === "open") {
    const item: GuardItem = { ...guard, entity: "guard", incidentId: id, ownerId };
    ops.push({ put: item, condition: cond.or(cond.attrNotExists("pk"), cond.eq("incidentId", id)) });
  }
  if (systemComment) ops.push({ put: newComment(id, null, systemComment, now) });
  try {
    await deps.store.transact(ops);
  } catch (err) {
    if (!(err instanceof ConditionFailedError)) throw err;
    if (err.failedIndexes.includes(0) || err.failedIndexes.length === 0) {
      throw new ConflictError(`The incident changed meanwhile (it was ${before.status}); read it again and retry`);
    }
    const other = await deps.store.get<GuardItem>(guard, { consistent: true });
    throw new ConflictError(
      `Another incident (${other?.incidentId ?? "unknown"}) is open for ${before.repo} ${before.workflowName} on ${before.branch}`,
    );
  }
  await recordAudit(deps, {
    userId: actor?.userId ?? ownerId,
    action: "incident.transition",
    resourceType: "incident",
    resourceId: id,
    details: { from: before.status, to, by: actor ? "user" : "system" },
    ipAddress: actor?.ip ?? null,
  });
  const after = { ...before, ...set } as IncidentItem;
  await publishIncident(deps, after, "transition");
  return toIncident(after);
}

export async function addComment(deps: Pick<Deps, "store">, actor: Actor, id: string, body: string) {
  await getIncidentItem(deps, actor.userId, id);
  const item = newComment(id, actor.userId, body, Date.now());
  await deps.store.put(item, { condition: cond.notExists() });
  await recordAudit(deps, {
    userId: actor.userId,
    action: "incident.comment",
    resourceType: "incident",
    resourceId: id,
    details: { commentId: item.id },
    ipAddress: actor.ip,
  });
  return toComment(item);
}

export async function listComments(
  deps: Pick<Deps, "store">,
  ownerId: string,
  id: string,
  q: { limit: number; cursor?: string },
) {
  await getIncidentItem(deps, ownerId, id);
  const page = await deps.store.query<CommentItem>({
    pk: incidentKey(id).pk,
    sk: { beginsWith: "COMMENT#" },
    limit: q.limit,
    cursor: q.cursor,
  });
  return { items: page.items.map(toComment), nextCursor: page.nextCursor };
}

export interface FailedRun {
  ownerId: string;
  repo: string;
  workflowId: number;
  workflowName: string;
  branch: string;
  runId: string;
  runNumber: number;
  conclusion: string;
  htmlUrl: string | null;
}

const notContains = (attr: string, value: string): Condition => ({
  expression: "NOT contains(#ncA, :ncV)",
  names: { "#ncA": attr },
  values: { ":ncV": value },
});

/**
 * A failed run: opens an incident (incident + guard in one transaction), or
 * links the run to the one already open for the same owner + repo + workflow +
 * branch. Idempotent: a redelivered run is linked once.
 */
export async function recordFailure(
  deps: IncidentDeps,
  run: FailedRun,
): Promise<{ incident: Incident; opened: boolean }> {
  const guardKey = openGuardKey(run.ownerId, run.repo, run.workflowId, run.branch);
  for (let attempt = 0; attempt < 5; attempt++) {
    const now = Date.now();
    const guard = await deps.store.get<GuardItem>(guardKey, { consistent: true });
    if (guard) {
      const current = await deps.store.get<IncidentItem>(incidentKey(guard.incidentId), { consistent: true });
      if (!current) continue;
      if (current.runIds.includes(run.runId)) return { incident: toIncident(current), opened: false };
      try {
        await deps.store.transact([
          {
            update: {
              ...incidentKey(current.id),
              set: {
                runIds: [...current.runIds, run.runId],
                lastRunId: run.runId,
                lastRunUrl: run.htmlUrl,
                updatedAt: now,
                version: current.version + 1,
              },
              condition: cond.and(cond.eq("version", current.version), notContains("runIds", run.runId)),
            },
          },
          {
            put: newComment(
              current.id,
              null,
              `Workflow run #${run.runNumber} (${run.runId}) also ended in ${run.conclusion}`,
              now,
            ),
          },
        ]);
      } catch (err) {
        if (err instanceof ConditionFailedError) continue;
        throw err;
      }
      const after = await getIncidentItem(deps, run.ownerId, current.id);
      await publishIncident(deps, after, "run_linked");
      return { incident: toIncident(after), opened: false };
    }
    const id = newId("inc");
    const item: IncidentItem = {
      ...incidentKey(id),
      entity: "incident",
      id,
      ownerId: run.ownerId,
      status: "open",
      title: `${run.workflowName} failed on ${run.repo}@${run.branch}`,
      repo: run.repo,
      workflowId: run.workflowId,
      workflowName: run.workflowName,
      branch: run.branch,
      runIds: [run.runId],
      lastRunId: run.runId,
      lastRunUrl: run.htmlUrl,
      openedAt: now,
      acknowledgedAt: null,
      resolvedAt: null,
      updatedAt: now,
      version: 1,
      ...incidentIndex(run.ownerId, run.repo, now, id),
    };
    const guardItem: GuardItem = { ...guardKey, entity: "guard", incidentId: id, ownerId: run.ownerId };
    try {
      await deps.store.transact([
        { put: item, condition: cond.attrNotExists("pk") },
        { put: guardItem, condition: cond.attrNotExists("pk") },
        {
          put: newComment(
            id,
            null,
            `Opened: workflow run #${run.runNumber} (${run.runId}) ended in ${run.conclusion}`,
            now,
          ),
        },
      ]);
    } catch (err) {
      if (err instanceof ConditionFailedError) continue; // Another delivery opened it first: link to that one.
      throw err;
    }
    await recordAudit(deps, {
      userId: run.ownerId,
      action: "incident.open",
      resourceType: "incident",
      resourceId: id,
      details: { repo: run.repo, workflowId: run.workflowId, branch: run.branch, runId: run.runId },
    });
    await publishIncident(deps, item, "opened");
    return { incident: toIncident(item), opened: true };
  }
  throw new ConflictError("The incident kept changing; the delivery will be retried");
}

/** A green run resolves the owner's open incident for the same repo + workflow + branch, if any. */
export async function resolveOnSuccess(
  deps: IncidentDeps,
  run: Omit<FailedRun, "conclusion">,
): Promise<Incident | null> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const guard = await deps.store.get<GuardItem>(openGuardKey(run.ownerId, run.repo, run.workflowId, run.branch), {
      consistent: true,
    });
    if (!guard) return null;
    try {
      return await transitionIncident(
        deps,
        run.ownerId,
        guard.incidentId,
        "resolved",
        null,
        `Resolved automatically: workflow run #${run.runNumber} (${run.runId}) succeeded`,
      );
    } catch (err) {
      if (!(err instanceof ConflictError || err instanceof NotFoundError)) throw err;
    }
  }
  return null;
}
