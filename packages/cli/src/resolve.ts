import { orThrow, type Schemas } from "@hoist/client";
import { CliError } from "./errors.ts";
import type { Session } from "./session.ts";

type Page<T> = { items: T[]; nextCursor: string | null } | T[];

/** Every item of a paged list, 100 at a time. */
export async function listAll<T>(page: (cursor: string | undefined) => Promise<Page<T>>): Promise<T[]> {
  const all: T[] = [];
  let cursor: string | undefined;
  do {
    const got = await page(cursor);
    if (Array.isArray(got)) return [...all, ...got];
    all.push(...got.items);
    cursor = got.nextCursor ?? undefined;
  } while (cursor);
  return all;
}

export const listServers = (s: Session) =>
  listAll((cursor) => orThrow(s.client.GET("/api/servers", { params: { query: { limit: 100, cursor } } })));
export const listProjects = (s: Session) =>
  listAll((cursor) => orThrow(s.client.GET("/api/projects", { params: { query: { limit: 100, cursor } } })));
export const listApps = (s: Session, projectId?: string) =>
  listAll((cursor) => orThrow(s.client.GET("/api/apps", { params: { query: { limit: 100, cursor, projectId } } })));

/** An id (`<prefix>_…`) as it is, or the one item with that name; none or several is a clear error. */
async function byIdOrName<T extends { id: string; name: string }>(
  kind: string,
  ref: string,
  prefix: string,
  list: () => Promise<T[]>,
  get: (id: string) => Promise<T>,
): Promise<T> {
  if (ref.startsWith(`${prefix}_`)) return get(ref);
  const found = (await list()).filter((item) => item.name === ref);
  if (found.length === 1) return found[0] as T;
  if (found.length === 0) throw new CliError(`no ${kind} named "${ref}" (\`hoist ${kind}s list\` shows yours)`);
  throw new CliError(
    `${found.length} ${kind}s are named "${ref}"; name one by id:\n${found.map((i) => `  ${i.id}`).join("\n")}`,
  );
}

export const resolveServer = (s: Session, ref: string): Promise<Schemas["Server"]> =>
  byIdOrName(
    "server",
    ref,
    "srv",
    () => listServers(s),
    (id) => orThrow(s.client.GET("/api/servers/{id}", { params: { path: { id } } })),
  );

export const resolveProject = (s: Session, ref: string): Promise<Schemas["Project"]> =>
  byIdOrName(
    "project",
    ref,
    "prj",
    () => listProjects(s),
    (id) => orThrow(s.client.GET("/api/projects/{id}", { params: { path: { id } } })),
  );

export const resolveApp = (s: Session, ref: string): Promise<Schemas["App"]> =>
  byIdOrName(
    "app",
    ref,
    "app",
    () => listApps(s),
    (id) => orThrow(s.client.GET("/api/apps/{id}", { params: { path: { id } } })),
  );

/** An app's deployments, newest first (`limit` of them). */
export async function recentDeployments(s: Session, appId: string | undefined, limit = 20) {
  const page = await orThrow(s.client.GET("/api/deployments", { params: { query: { appId, limit } } }));
  return page.items;
}
