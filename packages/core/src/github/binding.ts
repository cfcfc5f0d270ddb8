import type { Actor } from "../actor.ts";
import type { Repository } from "../apps/entity.ts";
import { ValidationError } from "../errors.ts";
import type { Deps } from "../ports.ts";
import { appHookKey, type RepoHookItem, repoHookKey } from "./repo-entity.ts";

/** How an app is tied to its repository, which decides who may deliver its events. */
export type RepoBinding =
  /** By GitHub's repository id, after GitHub confirmed the owner's access: deliveries signed with the repository's secret. */
  | "id"
  /** By name, by an admin where the operator set the global webhook secret (trusted for every repository). */
  | "name"
  /** By name, reached only through the app's own hook URL and secret. */
  | "app-hook";

/**
 * An app's `repository` may name only a repository its owner connected
 * (GitHub confirmed push or admin access; the numeric id is stored). Where the
 * operator set `HOIST_GITHUB_WEBHOOK_SECRET`, admins may also bind one by name;
 * an app with its own hook may name any repository, since only that hook's
 * deliveries reach it. Anything else is a 400 saying how to get there.
 */
export async function bindRepository(
  deps: Pick<Deps, "store" | "config">,
  actor: Pick<Actor, "userId" | "admin">,
  appId: string | undefined,
  repository: Repository,
): Promise<{ repository: Repository; binding: RepoBinding }> {
  const ownerId = actor.userId;
  const connected = await deps.store.get<RepoHookItem>(repoHookKey(ownerId, repository.fullName));
  if (connected?.repoId !== undefined)
    return { repository: { ...repository, fullName: connected.fullName, id: connected.repoId }, binding: "id" };
  const unbound = { ...repository, id: null };
  if (appId && (await deps.store.get(appHookKey(appId)))) return { repository: unbound, binding: "app-hook" };
  // An admin acting as one (not through a token without the `admin` scope).
  if (deps.config.github.webhookSecret && actor.admin === true) return { repository: unbound, binding: "name" };
  throw new ValidationError(`${repository.fullName} is not a repository you connected`, [
    {
      path: "body.repository.fullName",
      message:
        "Connect it first (POST /api/github/repos/connect: GitHub confirms your access), or give the app its own hook (POST /api/apps/:id/webhook)",
    },
  ]);
}
