import type { Key } from "../store/store.ts";
import { pad } from "../users/entity.ts";

/**
 * A GitHub Actions workflow run as one owner sees it. A run belongs to every
 * Hoist user who connected its repository (a REPO# hook record) or has an app
 * on its repository and branch, so it is recorded once per owner:
 * `pk=RUN#<githubRunId>`, `sk=OWNER#<userId>` — tenancy is in the key, and the
 * rerun endpoint reads exactly the caller's copy.
 */
/** What GitHub tells about a run (the `workflow_run` payload, flattened). */
export type RunFields = {
  repo: string;
  workflowId: number;
  workflowName: string;
  branch: string;
  headSha: string;
  event: string;
  status: string;
  conclusion: string | null;
  htmlUrl: string | null;
  runNumber: number;
  runAttempt: number;
  createdAt: number;
  updatedAt: number;
  runStartedAt: number | null;
};

export type WorkflowRunItem = Key &
  RunFields & {
    entity: "workflow-run";
    id: string;
    ownerId: string;
    receivedAt: number;
    /** From the repository itself, not a fork, and not a pull-request run (see `RunPlan.trusted`). */
    trusted?: boolean;
    gsi1pk: string;
    gsi1sk: string;
    gsi2pk: string;
    gsi2sk: string;
    gsi3pk?: string;
    gsi3sk?: string;
  };

export const runKey = (runId: string, ownerId: string): Key => ({ pk: `RUN#${runId}`, sk: `OWNER#${ownerId}` });
export const ownerRunsPk = (ownerId: string) => `OWNER#${ownerId}#RUNS`;
/** An owner's runs of one commit (every workflow), for `repository.workflows` gates. */
export const shaRunsPk = (ownerId: string, repo: string, sha: string) =>
  `OWNER#${ownerId}#REPO#${repo.toLowerCase()}#SHA#${sha}`;
export const ownerRepoRunsPk = (ownerId: string, repo: string) => `OWNER#${ownerId}#REPO#${repo.toLowerCase()}#RUNS`;
/** Newest first by the run's creation time (stable across its status updates). */
export const runIndex = (ownerId: string, repo: string, createdAt: number, id: string) => ({
  gsi1pk: ownerRunsPk(ownerId),
  gsi1sk: `${pad(createdAt)}#${id}`,
  gsi2pk: ownerRepoRunsPk(ownerId, repo),
  gsi2sk: `${pad(createdAt)}#${id}`,
});

export function toWorkflowRun(r: WorkflowRunItem) {
  return {
    id: r.id,
    repo: r.repo,
    workflowId: r.workflowId,
    workflowName: r.workflowName,
    branch: r.branch,
    headSha: r.headSha,
    event: r.event,
    status: r.status,
    conclusion: r.conclusion,
    htmlUrl: r.htmlUrl,
    runNumber: r.runNumber,
    runAttempt: r.runAttempt,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    runStartedAt: r.runStartedAt,
  };
}
export type WorkflowRun = ReturnType<typeof toWorkflowRun>;
