import type { Key } from "../store/store.ts";

/**
 * A repository a user connected (POST /api/github/repos/connect): the webhook
 * Hoist created (or adopted) on GitHub. Under the owner's partition; indexed
 * by repository (gsi1) so a `workflow_run` delivery finds every owner of it.
 */
export type RepoHookItem = Key & {
  entity: "repo-hook";
  ownerId: string;
  fullName: string;
  hookId: number;
  /** The apps connected through this record (informational). */
  appIds: string[];
  connectedAt: number;
  updatedAt: number;
  gsi1pk: string;
  gsi1sk: string;
};

export const repoHookKey = (ownerId: string, fullName: string): Key => ({
  pk: `OWNER#${ownerId}`,
  sk: `REPO#${fullName.toLowerCase()}`,
});
export const repoHooksPk = (fullName: string) => `REPO#${fullName.toLowerCase()}#HOOKS`;
export const repoHookIndex = (ownerId: string, fullName: string) => ({
  gsi1pk: repoHooksPk(fullName),
  gsi1sk: `OWNER#${ownerId}`,
});
