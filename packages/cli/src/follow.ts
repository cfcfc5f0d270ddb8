import { HoistApiError, orThrow, type Schemas } from "@hoist/client";
import WebSocket from "ws";
import { CliError, UnreachableError } from "./errors.ts";
import type { Session } from "./session.ts";

export type Deployment = Schemas["Deployment"];
export type LogLine = { seq: number; ts: number; stream: "stdout" | "stderr" | "system"; line: string };

export const FINISHED: readonly string[] = ["succeeded", "failed", "cancelled"];

export interface FollowOptions {
  session: Session;
  deploymentId: string;
  /** The WebSocket endpoint, without `?token=`. */
  wsUrl: string;
  /** Lines after this seq are printed (0: all). */
  since?: number;
  /** Each line once, in seq order. */
  onLine(line: LogLine): void;
  /** Each status the deployment moves to (the last one is terminal). */
  onStatus(deployment: Deployment): void;
  /** A dropped connection being retried (attempt 1, 2, …). */
  onReconnect?(attempt: number, reason: string): void;
  /** Stops following: `follow` then answers undefined. */
  signal?: AbortSignal;
  /** How often the deployment's status is also read over HTTP (a safety net for a silent socket). */
  pollMs?: number;
}

/**
 * Follows a deployment's log over the WebSocket until it ends, and answers the
 * finished deployment. Every line is handed on once, in order: a dropped
 * connection is reopened (with backoff) and re-subscribed with `since` = the
 * last seq handed on; a gap is filled from `GET /logs?after=`; and once the
 * deployment has ended (said over the socket, or seen over HTTP after a
 * reconnect or by the poll) the rest of its stored log is read over HTTP.
 */
export function follow(o: FollowOptions): Promise<Deployment | undefined> {
  const { session, deploymentId: id } = o;
  const channel = `deployment:${id}`;
  let last = o.since ?? 0;
  let lastStatus: string | undefined;
  let done = false;
  let finishing = false;
  let socket: WebSocket | undefined;
  let attempt = 0;
  let retryTimer: NodeJS.Timeout | undefined;
  let chain: Promise<void> = Promise.resolve();

  return new Promise<Deployment | undefined>((resolve, reject) => {
    const cleanup = () => {
      done = true;
      clearInterval(poll);
      clearInterval(ping);
      clearTimeout(retryTimer);
      o.signal?.removeEventListener("abort", onAbort);
      const s = socket;
      socket = undefined;
      s?.terminate();
    };
    const end = (d: Deployment | undefined) => {
      if (done) return;
      cleanup();
      resolve(d);
    };
    const fail = (err: unknown) => {
      if (done) return;
      cleanup();
      reject(err);
    };
    /** Message handling, HTTP reads and finishing run one at a time, in arrival order. */
    const serially = (fn: () => Promise<void>) => {
      chain = chain.then(() => (done ? undefined : fn())).catch(fail);
    };
    const onAbort = () => end(undefined);

    const emit = (lines: LogLine[]) => {
      for (const line of lines) {
        if (line.seq <= last) continue; // seen already (replay overlap, or read over HTTP)
        last = line.seq;
        o.onLine(line);
      }
    };
    const status = (d: Deployment) => {
      if (d.status === lastStatus) return;
      lastStatus = d.status;
      o.onStatus(d);
    };
    /** Stored lines after `last`, through `until`. */
    const readStored = async (until = Number.POSITIVE_INFINITY) => {
      while (last < until) {
        const after = last;
        const page = await retrying(() =>
          orThrow(
            session.client.GET("/api/deployments/{id}/logs", {
              params: { path: { id }, query: { after, limit: 1000 } },
            }),
          ),
        );
        emit((page.items as LogLine[]).filter((l) => l.seq <= until));
        if (page.items.length === 0 || last === after) return;
      }
    };
    const finish = async (d: Deployment) => {
      if (finishing) return;
      finishing = true;
      await readStored(); // an ended deployment's log is whole in the table
      status(d);
      end(d);
    };
    const check = async () => {
      const d = await retrying(() =>
        orThrow(session.client.GET("/api/deployments/{id}", { params: { path: { id } } })),
      );
      if (FINISHED.includes(d.status)) await finish(d);
      else status(d);
    };

    const handle = async (m: Record<string, unknown>) => {
      if (m.type === "log" && m.deploymentId === id && Array.isArray(m.lines)) {
        const lines = m.lines as LogLine[];
        const first = lines[0]?.seq;
        if (first !== undefined && first > last + 1) await readStored(first - 1);
        emit(lines);
      } else if (m.type === "status" && m.resource === "deployment" && m.id === id) {
        const d = (m.deployment as Deployment | undefined) ?? undefined;
        if (typeof m.status === "string" && FINISHED.includes(m.status)) {
          await finish(d ?? (await orThrow(session.client.GET("/api/deployments/{id}", { params: { path: { id } } }))));
        } else if (d) status(d);
      } else if (m.type === "error") {
        throw new CliError(`the WebSocket refused to follow ${id}: ${String(m.message)}`);
      }
    };

    let refreshedSinceOpen = false;
    const connect = () => {
      if (done) return;
      let token: string;
      try {
        token = session.requireToken();
      } catch (err) {
        return fail(err);
      }
      const ws = new WebSocket(`${o.wsUrl}${o.wsUrl.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`);
      socket = ws;
      let opened = false;
      let failure = "";
      ws.on("open", () => {
        opened = true;
        refreshedSinceOpen = false;
        // The subscription replays from the last line handed on; a run that ended meanwhile is seen over HTTP.
        serially(async () => {
          ws.send(JSON.stringify({ action: "subscribe", channel, since: last }));
          attempt = 0;
          await check();
        });
      });
      ws.on("message", (data) => {
        let m: unknown;
        try {
          m = JSON.parse(data.toString());
        } catch {
          return;
        }
        if (typeof m === "object" && m !== null) serially(() => handle(m as Record<string, unknown>));
      });
      ws.on("error", (err) => {
        failure = err.message;
      });
      ws.on("close", () => {
        if (socket !== ws || done) return;
        socket = undefined;
        if (!opened && /: 401$/.test(failure)) {
          // Refused at connect: the access token expired. Refresh once, then go on as after any drop.
          if (refreshedSinceOpen) return fail(new CliError("the WebSocket refused the token: run `hoist login`"));
          refreshedSinceOpen = true;
          serially(async () => {
            if (!(await session.refresh())) throw new CliError("the WebSocket refused the token: run `hoist login`");
            connect();
          });
          return;
        }
        attempt++;
        o.onReconnect?.(attempt, failure || "connection closed");
        retryTimer = setTimeout(connect, Math.min(5000, 100 * 2 ** attempt));
      });
    };

    const poll = setInterval(() => serially(() => check().catch(ignoreUnreachable)), o.pollMs ?? 10_000);
    const ping = setInterval(() => {
      if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ action: "ping" }));
    }, 60_000);
    if (o.signal?.aborted) return end(undefined);
    o.signal?.addEventListener("abort", onAbort);
    connect();
  });
}

const ignoreUnreachable = (err: unknown) => {
  if (!(err instanceof UnreachableError) && !(err instanceof HoistApiError && err.status >= 500)) throw err;
};

/** An HTTP read, tried again twice when Hoist could not be reached (a connection cut with the socket). */
async function retrying<T>(fn: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof UnreachableError) || i >= 2) throw err;
      await new Promise((r) => setTimeout(r, 300 * (i + 1)));
    }
  }
}
