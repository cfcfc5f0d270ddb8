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
  /** GitHub's numeric repository id: apps bind to it, deliveries are matched by it (a rename cannot redirect them). */
  repoId?: number;
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

/**
 * A connected repository's webhook secret, one per repository (every owner who
 * proved access to it shares its one hook), sealed by the KeyVault with the
 * repository id as context. Deliveries naming the repository are verified with it.
 */
export type RepoSecretItem = Key & { entity: "repo-secret"; repoId: number; fullName: string; secret: string };
export const repoSecretKey = (repoId: number): Key => ({ pk: `REPOSECRET#${repoId}`, sk: "SECRET" });
export const repoSecretContext = (repoId: number) => ({ repositoryId: String(repoId) });

/** An app's own hook (POST /api/apps/:id/webhook), for setups without GitHub sign-in. */
export type AppHookItem = Key & {
  entity: "app-hook";
  appId: string;
  ownerId: string;
  secret: string;
  createdAt: number;
};
export const appHookKey = (appId: string): Key => ({ pk: `APPHOOK#${appId}`, sk: "HOOK" });
export const appHookContext = (appId: string) => ({ appId });

/** The item a delivery's signature is checked with: a repository's secret or an app's hook. */
export const isDeliverySecretKey = (key: Key) => key.pk.startsWith("REPOSECRET#") || key.pk.startsWith("APPHOOK#");
