import { owned } from "../owned.ts";
import type { Key } from "../store/store.ts";

export type AppStatus = "stopped" | "starting" | "running" | "stopping" | "error";

export interface Repository {
  fullName: string;
  /** GitHub's repository id, for a repository the owner connected; null for one bound by name. */
  id?: number | null;
  branch: string;
  autoDeploy: boolean;
  deployOn: "push" | "ci-success";
  /** With `ci-success`: workflow names that must all have succeeded for the commit (any one succeeding otherwise). */
  workflows?: string[];
}

export interface Commands {
  start: string;
  stop: string;
  deploy: string;
}

export const DEFAULT_COMMANDS: Commands = {
  start: "docker compose up -d",
  stop: "docker compose down",
  // The deployment's commit, or the tip of its branch as just fetched (a manual deploy GitHub could not resolve).
  // (`\${…}` is the shell's parameter expansion, escaped in this template literal.)
  deploy: `git fetch --all --prune && git checkout --force "\${HOIST_COMMIT_SHA:-origin/$HOIST_BRANCH}" && docker compose up -d --build --remove-orphans`,
};

export type AppItem = Key & {
  entity: "app";
  id: string;
  ownerId: string;
  name: string;
  projectId: string;
  serverId: string;
  cdPath: string;
  appUrl: string | null;
  autoStopTimeout: number;
  status: AppStatus;
  /** Changes on every start: a schedule or job for an older run does nothing. */
  runId: string | null;
  /** The `timeout` the current run was started with, if it overrides `autoStopTimeout`. */
  runTimeout?: number | null;
  startedAt: number | null;
  stopsAt: number | null;
  /** Running time is booked up to here (ms; usage/running.ts); absent when the app is not being metered. */
  meteredUntil?: number | null;
  /** The run that holds one of the owner's `runningApps` (from its start until it ends). */
  countedRun?: string | null;
  lastError: { message: string; exitCode: number | null; output: string[]; at: number } | null;
  repository: Repository | null;
  /** How `repository` is bound (github/binding.ts); absent on apps bound before bindings existed (by name). */
  repoBinding?: "id" | "name" | "app-hook";
  commands: Commands | null;
  createdAt: number;
  updatedAt: number;
  version: number;
  gsi1pk: string;
  gsi1sk: string;
  gsi2pk: string;
  gsi2sk: string;
  gsi3pk?: string;
  gsi3sk?: string;
};

export type App = Omit<
  AppItem,
  "pk" | "sk" | "entity" | "ownerId" | "runId" | "version" | `gsi${1 | 2 | 3}${"pk" | "sk"}`
>;

export const appKey = (ownerId: string, id: string) => owned.key(ownerId, "APP", id);
export const appEnvKey = (ownerId: string, id: string): Key => ({ pk: `OWNER#${ownerId}`, sk: `APP#${id}#ENV` });
export const projectAppsPk = (projectId: string) => `PROJECT#${projectId}#APPS`;
/** Apps bound by name (by an admin, under the operator's global secret): matched by name. */
export const repoBranchPk = (fullName: string, branch: string) => `REPO#${fullName.toLowerCase()}#${branch}`;
/** Apps bound by GitHub repository id (connected with proof): matched by id, so a rename cannot redirect them. */
export const repoIdBranchPk = (repoId: number, branch: string) => `REPOID#${repoId}#${branch}`;
/** A gsi3 partition of one of the two above: where a delivery finds its apps. */
export const isRepoBranchPk = (pk: string) => pk.startsWith("REPO#") || pk.startsWith("REPOID#");
/** An app's own item (not its env or anything else under the app). */
export const isAppKey = (key: Key) => key.pk.startsWith("OWNER#") && /^APP#[^#]+$/.test(key.sk);
/** The attributes that decide which deliveries reach an app, and whether it deploys on them. */
export const APP_BINDING_ATTRIBUTES = ["repository", "gsi3pk", "gsi3sk"] as const;

export function toApp(a: AppItem): App {
  return {
    id: a.id,
    name: a.name,
    projectId: a.projectId,
    serverId: a.serverId,
    cdPath: a.cdPath,
    appUrl: a.appUrl,
    autoStopTimeout: a.autoStopTimeout,
    status: a.status,
    startedAt: a.startedAt,
    stopsAt: a.stopsAt,
    lastError: a.lastError,
    repository: a.repository,
    commands: a.commands,
    createdAt: a.createdAt,
    updatedAt: a.updatedAt,
  };
}

export const commandsOf = (a: AppItem): Commands => ({ ...DEFAULT_COMMANDS, ...a.commands });
export const isActive = (s: AppStatus) => s === "starting" || s === "running" || s === "stopping";
