import type { Actor } from "../actor.ts";
import { ValidationError } from "../errors.ts";
import type { Deps } from "../ports.ts";
import type { Page } from "../store/store.ts";
import { type MetricsPoint, UnsupportedServerError } from "./metrics.ts";
import { metricsPoints } from "./metrics-entity.ts";
import { getServerItem } from "./service.ts";
import { probeServer } from "./status.ts";

/** The history's default window: the last 24 hours. */
export const DEFAULT_WINDOW_MS = 24 * 60 * 60 * 1000;

/**
 * `GET /api/servers/:id/metrics`: connects now and reads the metrics (one SSH
 * command). A server that cannot be reached is the SSH error's problem
 * (502/504; a host key mismatch 409, as for `/status`); one without /proc a 422.
 */
export async function serverMetrics(deps: Deps, actor: Actor, id: string): Promise<MetricsPoint> {
  const server = await getServerItem(deps, actor.userId, id);
  if (!server.credentials)
    throw new ValidationError("This server has no SSH credentials yet; add a privateKey or password");
  const checked = await probeServer(deps, server);
  if (checked.sshError) throw checked.sshError;
  if (checked.outputError) throw checked.outputError;
  const probe = checked.probe;
  if (!probe?.point) throw new UnsupportedServerError(probe?.unsupported ?? "");
  return probe.point;
}

export interface HistoryQuery {
  from?: number;
  to?: number;
  limit: number;
  cursor?: string;
}

/** `GET /api/servers/:id/metrics/history`: the sweep's points with `from ≤ at ≤ to`, oldest first. */
export async function metricsHistory(
  deps: Pick<Deps, "store">,
  actor: Actor,
  id: string,
  q: HistoryQuery,
  now = Date.now(),
): Promise<Page<MetricsPoint>> {
  await getServerItem(deps, actor.userId, id);
  const to = q.to ?? now;
  const from = q.from ?? to - DEFAULT_WINDOW_MS;
  if (from > to) {
    throw new ValidationError("`from` is after `to`", [
      { path: "query.from", message: `Must not be after to (${to})` },
    ]);
  }
  try {
    return await metricsPoints.between(deps.store, actor.userId, id, { from, to, limit: q.limit, cursor: q.cursor });
  } catch (err) {
    // A cursor of this list but another window: DynamoDB refuses a start key outside the key condition
    // ("…starting key is outside query boundaries…"; DynamoDB Local: "…does not match the range key predicate").
    if (err instanceof Error && err.name === "ValidationException" && /starting key/i.test(err.message))
      throw new ValidationError("Invalid cursor", [
        { path: "query.cursor", message: "The cursor is from another from/to window; ask again without it" },
      ]);
    throw err;
  }
}
