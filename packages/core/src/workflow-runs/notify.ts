import { type AppItem, repoBranchPk } from "../apps/entity.ts";
import type { Deps } from "../ports.ts";
import { publish } from "../realtime/publish.ts";
import { cond } from "../store/store.ts";

/** The owner's apps on `repo`@`branch` (gsi3, every page). */
export async function ownerAppsOn(
  deps: Pick<Deps, "store">,
  ownerId: string,
  repo: string,
  branch: string,
): Promise<AppItem[]> {
  const apps: AppItem[] = [];
  let cursor: string | null = null;
  do {
    const page: { items: AppItem[]; nextCursor: string | null } = await deps.store.query<AppItem>({
      index: "gsi3",
      pk: repoBranchPk(repo, branch),
      limit: 100,
      cursor,
      filter: cond.eq("ownerId", ownerId),
    });
    apps.push(...page.items.filter((a) => a.entity === "app"));
    cursor = page.nextCursor;
  } while (cursor);
  return apps;
}

/**
 * Publishes `message` on `app:<id>` for each of the owner's apps on the
 * repository and branch. Best effort: a failed broadcast is logged, never
 * fails the webhook or the request.
 */
export async function publishToRepoApps(
  deps: Pick<Deps, "store" | "broadcaster" | "logger">,
  ownerId: string,
  repo: string,
  branch: string,
  message: Record<string, unknown>,
): Promise<void> {
  try {
    const apps = await ownerAppsOn(deps, ownerId, repo, branch);
    await Promise.all(apps.map((a) => publish(deps, `app:${a.id}`, [{ ...message, appId: a.id }])));
  } catch (err) {
    deps.logger.warn("publishing to app channels failed", { repo, branch, error: err });
  }
}
