import { type AppItem, appKey } from "../apps/entity.ts";
import { appsOnRepoBranch } from "../apps/service.ts";
import type { Deps } from "../ports.ts";
import { type RunPlan, succeededWorkflows } from "../workflow-runs/service.ts";
import { repoConnections } from "./repos.ts";
import type { DeliveryScope } from "./webhook-auth.ts";

/**
 * Whom a verified delivery reaches: the apps on its repository's branch (as
 * far as the secret that signed it speaks for), those of them that deploy on
 * this event, and the owners a workflow run is recorded for.
 */

/** The apps a delivery in `scope` may reach on the repository's branch, wherever they are bound. */
export async function appsInScope(
  deps: Pick<Deps, "store">,
  scope: DeliveryScope,
  repo: { id: number | null; fullName: string },
  branch: string,
): Promise<AppItem[]> {
  if (scope.kind === "app") {
    const app = await deps.store.get<AppItem>(appKey(scope.ownerId, scope.appId));
    const r = app?.repository;
    const same =
      r && (typeof r.id === "number" ? r.id === repo.id : r.fullName.toLowerCase() === repo.fullName.toLowerCase());
    return app && same && r.branch === branch ? [app] : [];
  }
  const id = scope.kind === "repository" ? scope.repoId : repo.id;
  return appsOnRepoBranch(deps, { id, fullName: repo.fullName, byName: scope.kind === "global" }, branch);
}

/** Apps with autoDeploy on the repository's branch that deploy on `on`, as far as `scope` reaches. */
export async function appsDeployingOn(
  deps: Pick<Deps, "store">,
  scope: DeliveryScope,
  repo: { id: number | null; fullName: string },
  branch: string,
  on: "push" | "ci-success",
): Promise<AppItem[]> {
  const apps = await appsInScope(deps, scope, repo, branch);
  return apps.filter((app) => {
    const r = app.repository;
    return r?.autoDeploy === true && r.deployOn === on && r.branch === branch;
  });
}

/**
 * Who a workflow run is recorded for: the owners the delivery's scope reaches
 * (those who connected the repository or have an app on its branch). A
 * repository's or app's own hook speaks for nobody else.
 */
export async function runOwnersInScope(
  deps: Pick<Deps, "store">,
  scope: DeliveryScope,
  run: RunPlan,
): Promise<string[]> {
  if (scope.kind === "app") return [scope.ownerId];
  const repo = { id: scope.kind === "repository" ? scope.repoId : run.repoId, fullName: run.repo };
  const apps = await appsInScope(deps, scope, repo, run.branch);
  const connected = (await repoConnections(deps, run.repo)).filter(
    (c) => scope.kind === "global" || c.repoId === repo.id,
  );
  return [...new Set([...apps.map((a) => a.ownerId), ...connected.map((c) => c.ownerId)])].sort();
}

/** An app that names the workflows that must pass deploys only once every one of them succeeded for the commit. */
export async function workflowsPassed(
  deps: Pick<Deps, "store">,
  app: AppItem,
  plan: { repo: string; commitSha: string },
): Promise<boolean> {
  const required = app.repository?.workflows ?? [];
  if (required.length === 0) return true;
  const passed = await succeededWorkflows(deps, app.ownerId, plan.repo, plan.commitSha);
  return required.every((name) => passed.has(name));
}
