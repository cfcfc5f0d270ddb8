import { createHash } from "node:crypto";
import { HoistError } from "../errors.ts";
import type { Key } from "../store/store.ts";

/**
 * Operating a running app: its container logs (a one-shot read, and a tail
 * followed while `app-logs:<appId>` has subscribers) and one-shot execs.
 * The only place the keys of these items are built.
 */

/** Where a tail picks up: see tail-seam.ts. */
export interface TailCursor {
  /** `--since` of the next command: a normalized time (compose-logs.ts `normalizeTime`). */
  since: string;
  /** Per service: the newest time published, and fingerprints of the lines published at exactly that time. */
  services: Record<string, { time: string; seen: string[] }>;
}

/**
 * One tail per app: this lease names the tail job that may run (`holder`, a
 * tailId), and once a job runs it, that run (`runner`, a token per run, so a
 * duplicate delivery never runs a second tail). Renewed at every idle check;
 * a lapsed one is taken by the next subscribe.
 */
export type TailLeaseItem = Key & {
  entity: "app-log-tail";
  appId: string;
  ownerId: string;
  holder: string;
  runner?: string;
  leaseUntil: number;
  cursor: TailCursor;
  /** The last time a subscriber asked for the tail while it ran (a release must not drop that subscriber). */
  wantedAt?: number;
  /** The exclusive (embedded) instance that wrote it (see `Deps.exclusiveInstanceId`). */
  instanceId?: string;
  createdAt: number;
  /** TTL (seconds): a lease no one renews is cleaned up. */
  expiresAt: number;
  gsi1pk: string;
  gsi1sk: string;
};

export const tailLeaseKey = (appId: string): Key => ({ pk: `APP#${appId}`, sk: "LOGTAIL" });
/** Every tail lease (index gsi1), for the sweep to find one whose job died. */
export const tailLeases = {
  index: (appId: string) => ({ gsi1pk: "LOGTAILS", gsi1sk: appId }),
  all: () => ({ index: "gsi1" as const, pk: "LOGTAILS" }),
};
export const appLogsChannel = (appId: string) => `app-logs:${appId}`;

export type ExecStatus = "queued" | "running" | "ended";

/** One exec asked for over a WebSocket connection; its id is derived from the connection and the client's id. */
export type ExecItem = Key & {
  entity: "exec";
  id: string;
  /** The client's `id`, echoed in every message about it. */
  clientId: string;
  connectionId: string;
  ownerId: string;
  appId: string;
  command: string;
  status: ExecStatus;
  /** Set by `exec-cancel`; the running job polls it. */
  cancelled?: boolean;
  createdAt: number;
  startedAt?: number;
  endedAt?: number;
  exitCode?: number | null;
  expiresAt: number;
};

/** An exec item lives a day (enough to refuse a reused id on a connection, which lives at most 2 hours). */
export const EXEC_TTL_SECONDS = 24 * 60 * 60;

/**
 * The exec of `clientId` on `connectionId`: derived, so `exec-cancel` finds it
 * with one GetItem and a second `exec` with the same id on the same connection
 * collides with the first.
 */
export function execIdOf(connectionId: string, clientId: string): string {
  return `exe_${createHash("sha256").update(`${connectionId}\n${clientId}`).digest("base64url").slice(0, 27)}`;
}

export const execKey = (execId: string): Key => ({ pk: `EXEC#${execId}`, sk: "EXEC" });

/** A command Hoist ran on the app's server failed in a way the caller should see (`docker compose logs` exiting non-zero). */
export class RemoteCommandError extends HoistError {
  override name = "RemoteCommandError";
  constructor(message: string) {
    super(502, "remote_command_failed", message);
  }
}
