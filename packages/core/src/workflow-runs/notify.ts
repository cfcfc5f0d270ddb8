import type { AppItem } from "../apps/entity.ts";
import { owned } from "../owned.ts";
import type { Deps } from "../ports.ts";
import { publish } from "../realtime/publish.ts";
import { queryAll } from "../store/store.ts";

/** The owner's apps on `repo`@`branch`, however they are bound (the owner's own app list, every page). */
export async function ownerAppsOn(
  deps: Pick<Deps, "store">,
  ownerId: string,
  repo: string,
  branch: string,
): Promise<AppItem[]> {
  const apps = await queryAll<AppItem>(deps.store, { index: "gsi1", pk: owned.listPk(ownerId, "APP") });
  return apps.filter(
    (a) => a.repository?.fullName.toLowerCase() === repo.toLowerCase() && a.repository.branch === branch,
  );
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
