import { type DeploymentItem, deploymentKey, FINISHED, type LogLine } from "../deployments/entity.ts";
import { storedLines } from "../deployments/log-chunks.ts";
import { ConditionFailedError } from "../errors.ts";
import type { Deps } from "../ports.ts";
import { type Condition, cond } from "../store/store.ts";
import {
  dropConnection,
  forEachBounded,
  logMessages,
  type SubscriptionItem,
  subscribers,
  subscriptionKey,
} from "./publish.ts";

/**
 * The seam between a deployment's stored log and its live stream, proven by
 * `seq`. A subscription to `deployment:<id>` has one sender at a time, so its
 * lines arrive in order, none twice, none skipped:
 * 1. Its *replay* (on subscribe) sends the stored lines after `since`, page by
 *    page, then hands over: `ready`, with `sentUpTo` the last line sent.
 * 2. The deploy worker's next fan-out takes a ready subscription (a
 *    conditional write on `ready` and `sentUpTo`) and sends what it lacks:
 *    lines stored since, lines only the worker holds in memory, the batch.
 *    From then on it is `live`: every fan-out sends it every new line.
 * 3. A ready subscription of a run that ended (no fan-out will come) is taken
 *    back by its replay, or by the worker's last step, and finished from the
 *    table, which then holds the whole log.
 */

type Deps_ = Pick<Deps, "store" | "broadcaster" | "logger">;
type Sub = Pick<SubscriptionItem, "connectionId" | "channel" | "subscribedAt">;

/** What the deploy worker's log writer knows that the table does not (yet). */
export interface LogSeam {
  /** The seq through which every kept line is in the table. */
  storedThrough(): number;
  /** Kept lines after `after` and before `before` that are not in the table yet. */
  unstored(after: number, before: number): LogLine[];
  /** Subscriptions this writer made live (connection → `subscribedAt`): they get every line without a read. */
  readonly live: Map<string, number | undefined>;
}

const PAGE_LINES = 1000;

const keyOf = (sub: Sub) => subscriptionKey(sub.connectionId, sub.channel);
/** This very subscription (a re-subscribe on the same connection replaces it with another `subscribedAt`). */
const same = (sub: Sub) => (sub.subscribedAt === undefined ? cond.exists() : cond.eq("subscribedAt", sub.subscribedAt));

/** A conditional write on the subscription; false when the condition did not hold. */
async function transition(deps: Deps_, sub: Sub, set: Record<string, unknown>, ...when: Condition[]) {
  try {
    await deps.store.update(keyOf(sub), { set, condition: cond.and(same(sub), ...when) });
    return true;
  } catch (err) {
    if (err instanceof ConditionFailedError) return false;
    throw err;
  }
}

/** Posts in order; false when the connection is gone (and forgotten). */
async function send(deps: Deps_, deploymentId: string, sub: Sub, lines: LogLine[]): Promise<boolean> {
  for (const message of logMessages(deploymentId, lines)) {
    if ((await deps.broadcaster.post(sub.connectionId, message)) === "gone") {
      await dropConnection(deps, sub.connectionId);
      return false;
    }
  }
  return true;
}

/** Sends the stored lines after `from` through `through`; answers the last seq sent (or `from`), undefined once gone. */
async function sendStored(
  deps: Deps_,
  deploymentId: string,
  sub: Sub,
  from: number,
  through = Number.POSITIVE_INFINITY,
): Promise<number | undefined> {
  let sentUpTo = from;
  for (;;) {
    const { lines, more } = await storedLines(deps, deploymentId, sentUpTo, PAGE_LINES, through);
    if (lines.length === 0) return sentUpTo;
    if (!(await send(deps, deploymentId, sub, lines))) return undefined;
    sentUpTo = lines.at(-1)?.seq ?? sentUpTo;
    if (!more) return sentUpTo;
  }
}

/** Takes a ready subscription back to finish it from the table (its run ended), then makes it live. */
async function finishFromTable(deps: Deps_, deploymentId: string, sub: Sub, sentUpTo: number): Promise<void> {
  if (!(await transition(deps, sub, { ready: false }, cond.eq("ready", true), cond.eq("sentUpTo", sentUpTo)))) return;
  const last = await sendStored(deps, deploymentId, sub, sentUpTo);
  if (last !== undefined) await transition(deps, sub, { sentUpTo: last, live: true });
}

/** On subscribe: the stored backlog after `since`, then the hand-over (see above). */
export async function replayLog(deps: Deps_, sub: SubscriptionItem, deploymentId: string): Promise<void> {
  const sentUpTo = await sendStored(deps, deploymentId, sub, sub.sentUpTo ?? 0);
  if (sentUpTo === undefined) return;
  // Ready first, then look at the run: a run that ends in between is seen here or by the worker's last step.
  if (!(await transition(deps, sub, { sentUpTo, ready: true }))) return;
  const dep = await deps.store.get<DeploymentItem>(deploymentKey(deploymentId), { consistent: true });
  if (!dep || FINISHED.includes(dep.status)) await finishFromTable(deps, deploymentId, sub, sentUpTo);
}

/**
 * One fan-out of fresh lines to `deployment:<id>`. Live subscribers get the
 * batch at once, while the channel's subscriptions are read alongside; then
 * each ready one is taken over (see above), and subscriptions that are gone
 * leave the live set. One still replaying is left to its replay. With no
 * lines it only takes over (the writer does that while the command is quiet).
 */
export async function fanOutLog(
  deps: Deps_,
  deploymentId: string,
  batch: LogLine[],
  seam: LogSeam,
  /** The last seq published before this batch. */
  publishedUpTo: number,
): Promise<void> {
  const first = publishedUpTo + 1;
  const last = batch.at(-1)?.seq ?? publishedUpTo;
  const channel = `deployment:${deploymentId}`;
  const reading = subscribers(deps, channel);
  if (batch.length > 0)
    await forEachBounded(deps, [...seam.live.keys()], async (connectionId) => {
      if (!(await send(deps, deploymentId, { connectionId, channel }, batch))) seam.live.delete(connectionId);
    });
  const found = await reading;
  const current = new Map(found.map((sub) => [sub.connectionId, sub]));
  for (const [connectionId, subscribedAt] of seam.live) {
    if (current.get(connectionId)?.subscribedAt !== subscribedAt) seam.live.delete(connectionId); // unsubscribed, or again
  }
  const ready = found.filter((sub) => sub.ready && !sub.live && !seam.live.has(sub.connectionId));
  await forEachBounded(deps, ready, async (sub) => {
    const from = sub.sentUpTo ?? 0;
    if (from > last) return; // its replay read the table ahead of this batch: a later one takes it over
    const through = Math.min(seam.storedThrough(), first - 1);
    const held = seam.unstored(Math.max(from, through), first);
    // The index may lag: the condition holds only if this is still the subscription as read.
    const when = [cond.eq("ready", true), cond.eq("sentUpTo", from)];
    if (!(await transition(deps, sub, { sentUpTo: last, ready: false, live: true }, ...when))) return;
    seam.live.set(sub.connectionId, sub.subscribedAt);
    const stored = through > from ? await sendStored(deps, deploymentId, sub, from, through) : from;
    const lines = [...held, ...batch.filter((l) => l.seq > from)];
    if (stored === undefined || (lines.length > 0 && !(await send(deps, deploymentId, sub, lines))))
      seam.live.delete(sub.connectionId);
  });
}

/**
 * After a deployment ends (its log complete in the table): finishes any
 * subscription left ready after the last fan-out.
 */
export async function settleReplays(deps: Deps_, deploymentId: string): Promise<void> {
  await forEachBounded(deps, await subscribers(deps, `deployment:${deploymentId}`), async (indexed) => {
    const sub = await deps.store.get<SubscriptionItem>(keyOf(indexed), { consistent: true });
    if (sub?.ready && !sub.live) await finishFromTable(deps, deploymentId, sub, sub.sentUpTo ?? 0);
  });
}
