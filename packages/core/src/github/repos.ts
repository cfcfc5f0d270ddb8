import { randomBytes } from "node:crypto";
import { z } from "zod";
import type { Actor } from "../actor.ts";
import type { Repository } from "../apps/entity.ts";
import { getAppItem, updateApp } from "../apps/service.ts";
import { recordAudit } from "../audit/service.ts";
import { githubTokenFor } from "../auth/github.ts";
import { ConditionFailedError, HoistError, NotFoundError, ValidationError } from "../errors.ts";
import type { Deps } from "../ports.ts";
import { cond, queryAll } from "../store/store.ts";
import type { UserItem } from "../users/entity.ts";
import {
  type RepoHookItem,
  type RepoSecretItem,
  repoHookIndex,
  repoHookKey,
  repoSecretContext,
  repoSecretKey,
} from "./repo-entity.ts";
import { GitHubApiError, GitHubRest, nextPage } from "./rest.ts";

/** GitHub repositories on the user's behalf: list, connect (create the webhook), disconnect. */
export const FULL_NAME = /^[A-Za-z0-9_.-]{1,100}\/[A-Za-z0-9_.-]{1,100}$/;
const HOOK_EVENTS = ["push", "workflow_run"];

const GitHubRepo = z.object({
  id: z.number().int(),
  name: z.string(),
  full_name: z.string(),
  private: z.boolean(),
  html_url: z.string(),
  description: z.string().nullish(),
  default_branch: z.string().nullish(),
  updated_at: z.string().nullish(),
  owner: z.object({ login: z.string() }),
  permissions: z.object({ admin: z.boolean().optional() }).partial().nullish(),
});
const Hook = z.object({ id: z.number().int(), config: z.object({ url: z.string().optional() }).passthrough() });

export interface GitHubRepository {
  id: number;
  name: string;
  fullName: string;
  owner: string;
  private: boolean;
  htmlUrl: string;
  description: string | null;
  defaultBranch: string | null;
  updatedAt: number | null;
  admin: boolean;
  connected: boolean;
}

const client = async (deps: Pick<Deps, "keyVault" | "config">, user: UserItem) =>
  GitHubRest.forToken(deps.config, await githubTokenFor(deps, user));

/** Our opaque cursor carries GitHub's page number and page size, so a page never shifts under a changed limit. */
const encodeCursor = (page: number, perPage: number) =>
  Buffer.from(JSON.stringify({ p: page, n: perPage })).toString("base64url");
function decodeCursor(cursor: string): { page: number; perPage: number } {
  try {
    const { p, n } = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as { p: unknown; n: unknown };
    if (Number.isInteger(p) && Number.isInteger(n) && (p as number) > 0 && (n as number) >= 1 && (n as number) <= 100)
      return { page: p as number, perPage: n as number };
  } catch {}
  throw new ValidationError("Invalid cursor", [{ path: "query.cursor", message: "Not a cursor from this list" }]);
}

/** The user's repositories, most recently updated first, one GitHub page per page. */
export async function listRepos(deps: Deps, user: UserItem, q: { limit: number; cursor?: string }) {
  const { page, perPage } = q.cursor ? decodeCursor(q.cursor) : { page: 1, perPage: q.limit };
  const gh = await client(deps, user);
  const answer = await gh.request(
    "GET",
    `/user/repos?per_page=${perPage}&page=${page}&sort=updated`,
    z.array(GitHubRepo),
  );
  const connected = await connectedRepos(deps, user.id);
  const items: GitHubRepository[] = answer.data.map((r) => ({
    id: r.id,
    name: r.name,
    fullName: r.full_name,
    owner: r.owner.login,
    private: r.private,
    htmlUrl: r.html_url,
    description: r.description ?? null,
    defaultBranch: r.default_branch ?? null,
    updatedAt: r.updated_at ? Date.parse(r.updated_at) : null,
    admin: r.permissions?.admin ?? false,
    connected: connected.has(r.full_name.toLowerCase()),
  }));
  const next = nextPage(answer.headers.get("link"));
  return { items, nextCursor: next ? encodeCursor(next, perPage) : null };
}

async function connectedRepos(deps: Pick<Deps, "store">, ownerId: string): Promise<Set<string>> {
  const names = new Set<string>();
  let cursor: string | null = null;
  do {
    const page: { items: RepoHookItem[]; nextCursor: string | null } = await deps.store.query<RepoHookItem>({
      pk: `OWNER#${ownerId}`,
      sk: { beginsWith: "REPO#" },
      limit: 100,
      cursor,
    });
    for (const r of page.items) names.add(r.fullName.toLowerCase());
    cursor = page.nextCursor;
  } while (cursor);
  return names;
}

export function hookUrl(deps: Pick<Deps, "config">, requestOrigin: string): string {
  return `${(deps.config.publicUrl ?? requestOrigin).replace(/\/+$/, "")}/api/webhooks/github`;
}

const repoPath = (fullName: string) => {
  const [owner, repo] = fullName.split("/") as [string, string];
  return `/repos/${encodeURIComponent(owner)}/${encodeURIComponent(repo)}`;
};

/** 404 from GitHub (or 403 that is not a rate limit): the repository is not there for this token. */
function userFault(err: unknown, fullName: string): never {
  if (err instanceof GitHubApiError && (err.githubStatus === 404 || err.githubStatus === 403)) {
    throw new HoistError(
      404,
      "github_repo_not_found",
      `Repository ${fullName} was not found on GitHub, or your GitHub account may not manage its webhooks`,
    );
  }
  throw err;
}

const RepoAccess = z.object({
  id: z.number().int(),
  full_name: z.string(),
  permissions: z.object({ admin: z.boolean().optional(), push: z.boolean().optional() }).partial().nullish(),
});

/**
 * The repository's webhook secret: created (random, sealed) by the first
 * owner who connects it, shared by the later ones (GitHub keeps one hook per
 * URL and repository). Conditional create: two racing connects agree on one.
 */
async function repositorySecret(
  deps: Pick<Deps, "store" | "keyVault">,
  repoId: number,
  fullName: string,
): Promise<{ secret: string; created: boolean }> {
  const existing = await deps.store.get<RepoSecretItem>(repoSecretKey(repoId), { consistent: true });
  if (existing)
    return { secret: await deps.keyVault.decrypt(existing.secret, repoSecretContext(repoId)), created: false };
  const secret = randomBytes(32).toString("base64url");
  try {
    await deps.store.put(
      {
        ...repoSecretKey(repoId),
        entity: "repo-secret",
        repoId,
        fullName,
        secret: await deps.keyVault.encrypt(secret, repoSecretContext(repoId)),
      } satisfies RepoSecretItem,
      { condition: cond.notExists() },
    );
    return { secret, created: true };
  } catch (err) {
    if (!(err instanceof ConditionFailedError)) throw err;
    return repositorySecret(deps, repoId, fullName);
  }
}

export interface ConnectInput {
  fullName: string;
  appId: string;
  branch: string;
}

/**
 * Creates the repository webhook (or reuses the recorded one, or adopts the
 * one GitHub says exists already), records it, and points the app at the
 * repository and branch.
 */
export async function connectRepo(deps: Deps, user: UserItem, actor: Actor, input: ConnectInput, origin: string) {
  const app = await getAppItem(deps, user.id, input.appId);
  const gh = await client(deps, user);
  const path = repoPath(input.fullName);
  // The proof: GitHub itself says this user may push to (or administer) the repository, and which one it is.
  const repo = await gh.request("GET", path, RepoAccess).catch((err: unknown) => userFault(err, input.fullName));
  if (!(repo.data.permissions?.push || repo.data.permissions?.admin)) {
    throw new HoistError(403, "forbidden", `Your GitHub account has no push access to ${repo.data.full_name}`);
  }
  const repoId = repo.data.id;
  const { secret, created: newSecret } = await repositorySecret(deps, repoId, repo.data.full_name);
  const url = hookUrl(deps, origin);
  const existing = await deps.store.get<RepoHookItem>(repoHookKey(user.id, input.fullName), { consistent: true });

  let hookId: number | null = null;
  let outcome: "reused" | "created" | "adopted" = "reused";
  if (existing) {
    try {
      await gh.request("GET", `${path}/hooks/${existing.hookId}`, Hook);
      hookId = existing.hookId;
    } catch (err) {
      if (!(err instanceof GitHubApiError && err.githubStatus === 404)) throw err;
      // Deleted on GitHub meanwhile: create it again below.
    }
  }
  if (hookId === null) {
    try {
      const created = await gh.request("POST", `${path}/hooks`, Hook, {
        name: "web",
        active: true,
        events: HOOK_EVENTS,
        config: { url, content_type: "json", secret, insecure_ssl: "0" },
      });
      hookId = created.data.id;
      outcome = "created";
    } catch (err) {
      if (!(err instanceof GitHubApiError && err.githubStatus === 422 && /already exists/i.test(err.githubMessage))) {
        userFault(err, input.fullName);
      }
      const hooks = await gh.request("GET", `${path}/hooks?per_page=100`, z.array(Hook));
      const found = hooks.data.find((h) => h.config.url === url);
      if (!found)
        throw new HoistError(409, "conflict", `GitHub says a webhook exists on ${input.fullName}, but none for ${url}`);
      hookId = found.id;
      outcome = "adopted";
      // A hook from before per-repository secrets (or one made by hand): sign with the repository's secret from now on.
      if (newSecret) {
        await gh.request("PATCH", `${path}/hooks/${hookId}`, Hook, {
          config: { url, content_type: "json", secret, insecure_ssl: "0" },
        });
      }
    }
  }

  const now = Date.now();
  const item: RepoHookItem = {
    ...repoHookKey(user.id, input.fullName),
    entity: "repo-hook",
    ownerId: user.id,
    fullName: repo.data.full_name,
    repoId,
    hookId,
    appIds: [...new Set([...(existing?.appIds ?? []), app.id])],
    connectedAt: existing?.connectedAt ?? now,
    updatedAt: now,
    ...repoHookIndex(user.id, input.fullName),
  };
  await deps.store.put(item);

  const repository: Repository = {
    fullName: repo.data.full_name,
    branch: input.branch,
    autoDeploy: app.repository?.autoDeploy ?? true,
    deployOn: app.repository?.deployOn ?? "push",
  };
  const updated = await updateApp(deps, actor, app.id, { repository });
  await recordAudit(deps, {
    userId: user.id,
    action: "github.repo_connect",
    resourceType: "repository",
    resourceId: input.fullName.toLowerCase(),
    details: { fullName: input.fullName, appId: app.id, branch: input.branch, hookId, outcome },
    ipAddress: actor.ip,
  });
  return { repository: toConnection(item), app: updated, hook: { id: hookId, outcome } };
}

/** Removes the webhook on GitHub (already gone is fine) and forgets the record. */
export async function disconnectRepo(deps: Deps, user: UserItem, actor: Actor, fullName: string) {
  const existing = await deps.store.get<RepoHookItem>(repoHookKey(user.id, fullName), { consistent: true });
  if (!existing) throw new NotFoundError("Connected repository");
  const gh = await client(deps, user);
  try {
    await gh.request("DELETE", `${repoPath(existing.fullName)}/hooks/${existing.hookId}`, null);
  } catch (err) {
    if (!(err instanceof GitHubApiError && err.githubStatus === 404)) throw err;
  }
  await deps.store.delete(repoHookKey(user.id, fullName));
  await recordAudit(deps, {
    userId: user.id,
    action: "github.repo_disconnect",
    resourceType: "repository",
    resourceId: existing.fullName.toLowerCase(),
    details: { fullName: existing.fullName, hookId: existing.hookId },
    ipAddress: actor.ip,
  });
}

export const toConnection = (r: RepoHookItem) => ({
  fullName: r.fullName,
  hookId: r.hookId,
  appIds: r.appIds,
  connectedAt: r.connectedAt,
  updatedAt: r.updatedAt,
});

/** Every Hoist user who connected `fullName` (gsi1 on the hook records). */
/** Everyone's connection records of a repository, by name (index gsi1, every page). */
export async function repoConnections(deps: Pick<Deps, "store">, fullName: string): Promise<RepoHookItem[]> {
  return queryAll<RepoHookItem>(deps.store, { index: "gsi1", pk: repoHookIndex("", fullName).gsi1pk });
}

/** For the rerun endpoint: the caller's client and the repo path. */
export { client as githubClientFor, repoPath };
