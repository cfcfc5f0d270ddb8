import { z } from "zod";
import type { Actor } from "../actor.ts";
import { recordAudit } from "../audit/service.ts";
import { ConditionFailedError, HoistError, NotFoundError } from "../errors.ts";
import { githubClientFor, repoPath } from "../github/repos.ts";
import { GitHubApiError } from "../github/rest.ts";
import { recordFailure, resolveOnSuccess } from "../incidents/service.ts";
import type { Deps } from "../ports.ts";
import { cond, queryAll } from "../store/store.ts";
import type { UserItem } from "../users/entity.ts";
import {
  ownerRepoRunsPk,
  ownerRunsPk,
  type RunFields,
  runIndex,
  runKey,
  shaRunsPk,
  toWorkflowRun,
  type WorkflowRunItem,
} from "./entity.ts";
import { publishToRepoApps } from "./notify.ts";

const time = z
  .string()
  .max(64)
  .refine((s) => Number.isFinite(Date.parse(s)), "an ISO 8601 time");

/** The part of GitHub's `workflow_run` payload Hoist uses. */
export const WorkflowRunPayload = z.object({
  action: z.string().max(64),
  repository: z.object({ id: z.number().int(), full_name: z.string().min(3).max(200) }),
  workflow_run: z.object({
    /** The repository the run's commit came from: a fork's for a pull request from a fork. */
    head_repository: z.object({ id: z.number().int() }).nullish(),
    id: z.number().int().positive(),
    name: z.string().max(500).nullish(),
    workflow_id: z.number().int().nonnegative(),
    head_branch: z.string().max(1024).nullish(),
    head_sha: z.string().regex(/^[0-9a-f]{40}(?:[0-9a-f]{24})?$/),
    event: z.string().max(100),
    status: z.string().max(64).nullish(),
    conclusion: z.string().max(64).nullish(),
    html_url: z.string().max(2000).nullish(),
    run_number: z.number().int().nonnegative(),
    run_attempt: z.number().int().positive().nullish(),
    created_at: time,
    updated_at: time,
    run_started_at: time.nullish(),
    head_commit: z
      .object({
        message: z.string().nullish(),
        author: z.object({ name: z.string().nullish() }).nullish(),
      })
      .nullish(),
  }),
});
export type WorkflowRunEvent = z.infer<typeof WorkflowRunPayload>;

export type RunPlan = RunFields & {
  runId: string;
  /** GitHub's id of the repository (apps bound by id are matched by it). */
  repoId: number;
  commitMessage: string | null;
  author: string | null;
  /**
   * Whether the run speaks for the repository itself: its head is the
   * repository (not a fork) and it was not started by a pull request. Runs
   * from push, workflow_dispatch, repository_dispatch and schedule need write
   * access to start; only trusted runs deploy or move incidents.
   */
  trusted: boolean;
};

/** Pull-request runs execute code proposed by anyone (a fork's branch may be called `main`). */
const UNTRUSTED_EVENTS = ["pull_request", "pull_request_target"];

export function toRunPlan(p: WorkflowRunEvent): RunPlan | null {
  const r = p.workflow_run;
  if (!r.head_branch) return null;
  return {
    repo: p.repository.full_name,
    repoId: p.repository.id,
    branch: r.head_branch,
    runId: String(r.id),
    workflowId: r.workflow_id,
    workflowName: r.name?.trim() || `Workflow ${r.workflow_id}`,
    headSha: r.head_sha,
    event: r.event,
    status: r.status ?? (p.action === "completed" ? "completed" : "queued"),
    conclusion: r.conclusion ?? null,
    htmlUrl: r.html_url ?? null,
    runNumber: r.run_number,
    runAttempt: r.run_attempt ?? 1,
    createdAt: Date.parse(r.created_at),
    updatedAt: Date.parse(r.updated_at),
    runStartedAt: r.run_started_at ? Date.parse(r.run_started_at) : null,
    commitMessage: r.head_commit?.message?.slice(0, 4000) ?? null,
    author: r.head_commit?.author?.name?.slice(0, 200) ?? null,
    trusted: r.head_repository?.id === p.repository.id && !UNTRUSTED_EVENTS.includes(r.event),
  };
}

export const FAILED = ["failure", "timed_out"];
export const isFailure = (r: RunPlan) => r.status === "completed" && FAILED.includes(r.conclusion ?? "");
export const isSuccess = (r: RunPlan) => r.status === "completed" && r.conclusion === "success";

/** Names of the workflows with a trusted, successful latest run for `sha` (as recorded for `ownerId`). */
export async function succeededWorkflows(
  deps: Pick<Deps, "store">,
  ownerId: string,
  repo: string,
  sha: string,
): Promise<Set<string>> {
  const runs = await queryAll<WorkflowRunItem>(deps.store, { index: "gsi3", pk: shaRunsPk(ownerId, repo, sha) });
  const latest = new Map<string, WorkflowRunItem>();
  for (const r of runs) {
    const seen = latest.get(r.workflowName);
    if (!seen || r.updatedAt > seen.updatedAt) latest.set(r.workflowName, r);
  }
  return new Set(
    [...latest.values()]
      .filter((r) => r.trusted && r.status === "completed" && r.conclusion === "success")
      .map((r) => r.workflowName),
  );
}

export interface RunOutcome {
  owners: string[];
  /** Owners whose copy this event updated (an older, out-of-order event changes nothing). */
  applied: string[];
  incidents: string[];
  resolved: string[];
}

/**
 * Records the run for each owner (conditional on not being older than what is
 * stored), publishes it, and opens/links or resolves incidents. Only table
 * writes and broadcasts: no GitHub call. Idempotent under redelivery.
 */
export async function recordWorkflowRun(
  deps: Pick<Deps, "store" | "broadcaster" | "logger">,
  run: RunPlan,
  /** Who the run is recorded for: the owners the delivery's signature speaks for (github/webhooks.ts). */
  owners: string[],
): Promise<RunOutcome> {
  const outcome: RunOutcome = { owners, applied: [], incidents: [], resolved: [] };
  const now = Date.now();
  for (const ownerId of owners) {
    const item: WorkflowRunItem = {
      ...runKey(run.runId, ownerId),
      entity: "workflow-run",
      id: run.runId,
      ownerId,
      repo: run.repo,
      workflowId: run.workflowId,
      workflowName: run.workflowName,
      branch: run.branch,
      headSha: run.headSha,
      event: run.event,
      status: run.status,
      conclusion: run.conclusion,
      htmlUrl: run.htmlUrl,
      runNumber: run.runNumber,
      runAttempt: run.runAttempt,
      createdAt: run.createdAt,
      updatedAt: run.updatedAt,
      runStartedAt: run.runStartedAt,
      trusted: run.trusted,
      receivedAt: now,
      ...runIndex(ownerId, run.repo, run.createdAt, run.runId),
      gsi3pk: shaRunsPk(ownerId, run.repo, run.headSha),
      gsi3sk: run.runId,
    };
    try {
      await deps.store.put(item, {
        condition: cond.or(
          cond.attrNotExists("pk"),
          cond.compare("runAttempt", "<", run.runAttempt),
          cond.and(cond.eq("runAttempt", run.runAttempt), cond.compare("updatedAt", "<=", run.updatedAt)),
        ),
      });
    } catch (err) {
      if (err instanceof ConditionFailedError) continue; // A newer event for this run arrived first.
      throw err;
    }
    outcome.applied.push(ownerId);
    await publishToRepoApps(deps, ownerId, run.repo, run.branch, { type: "workflow_run", run: toWorkflowRun(item) });
    const ref = { ownerId, ...run };
    if (!run.trusted) continue; // recorded and shown, but a fork's or a pull request's run moves no incident
    if (isFailure(run)) {
      const { incident } = await recordFailure(deps, { ...ref, conclusion: run.conclusion ?? "failure" });
      outcome.incidents.push(incident.id);
    } else if (isSuccess(run)) {
      const resolved = await resolveOnSuccess(deps, ref);
      if (resolved) outcome.resolved.push(resolved.id);
    }
  }
  return outcome;
}

export async function listRuns(
  deps: Pick<Deps, "store">,
  ownerId: string,
  q: { repo?: string; status?: string; conclusion?: string; limit: number; cursor?: string },
) {
  const filters = [
    ...(q.status ? [cond.eq("status", q.status)] : []),
    ...(q.conclusion ? [cond.eq("conclusion", q.conclusion)] : []),
  ];
  const page = await deps.store.query<WorkflowRunItem>({
    index: q.repo ? "gsi2" : "gsi1",
    pk: q.repo ? ownerRepoRunsPk(ownerId, q.repo) : ownerRunsPk(ownerId),
    reverse: true,
    limit: q.limit,
    cursor: q.cursor,
    filter: filters.length > 0 ? cond.and(...filters) : undefined,
  });
  return { items: page.items.map(toWorkflowRun), nextCursor: page.nextCursor };
}

export async function getRunItem(deps: Pick<Deps, "store">, ownerId: string, id: string) {
  const item = await deps.store.get<WorkflowRunItem>(runKey(id, ownerId));
  if (item?.entity !== "workflow-run") throw new NotFoundError("Workflow run");
  return item;
}

/** Asks GitHub to re-run the run (or only its failed jobs) with the caller's token. */
export async function rerunWorkflow(deps: Deps, user: UserItem, actor: Actor, id: string, failedOnly: boolean) {
  const run = await getRunItem(deps, user.id, id);
  const gh = await githubClientFor(deps, user);
  const path = `${repoPath(run.repo)}/actions/runs/${encodeURIComponent(run.id)}/${failedOnly ? "rerun-failed-jobs" : "rerun"}`;
  try {
    await gh.request("POST", path, null, {});
  } catch (err) {
    if (err instanceof GitHubApiError && err.githubStatus === 404) throw new NotFoundError("Workflow run on GitHub");
    if (
      err instanceof GitHubApiError &&
      [403, 409, 422].includes(err.githubStatus) &&
      !/rate limit/i.test(err.message)
    ) {
      throw new HoistError(
        409,
        "conflict",
        `GitHub refused to re-run it${err.githubMessage ? `: ${err.githubMessage}` : ""}`,
      );
    }
    throw err;
  }
  await recordAudit(deps, {
    userId: user.id,
    action: "workflow_run.rerun",
    resourceType: "workflow-run",
    resourceId: run.id,
    details: { repo: run.repo, failedOnly },
    ipAddress: actor.ip,
  });
  return { run: toWorkflowRun(run), rerun: { failedOnly, requestedAt: Date.now() } };
}
