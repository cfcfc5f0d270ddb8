import type { AppItem } from "../apps/entity.ts";
import { appsOnRepoBranch } from "../apps/service.ts";
import type { Deps } from "../ports.ts";
import { publish } from "../realtime/publish.ts";

/** The owner's apps on `repo`@`branch` (gsi3, every page). */
export async function ownerAppsOn(
  deps: Pick<Deps, "store">,
  ownerId: string,
  repo: string,
  branch: string,
): Promise<AppItem[]> {
  return appsOnRepoBranch(deps, repo, branch, ownerId);
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
