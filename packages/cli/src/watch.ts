import { orThrow } from "@hoist/client";
import { type Deployment, follow, type LogLine } from "./follow.ts";
import { note, printJsonLine } from "./output.ts";
import { ask, interactive } from "./prompt.ts";
import { type Session, wsUrlOf } from "./session.ts";

export interface WatchOptions {
  json: boolean;
  wsUrl?: string;
  since?: number;
  /** Ctrl-C offers to cancel the deployment (deploy, rollback); `logs -f` just stops. */
  offerCancel: boolean;
}

/** Exit codes: the deployment's result, or Ctrl-C. */
export const EXIT = { succeeded: 0, failed: 1, interrupted: 130 } as const;

/**
 * Prints a deployment's log live until it ends and answers the exit code: 0
 * when it succeeded, 1 when it failed or was cancelled, 130 on Ctrl-C (after
 * asking, on a terminal, whether to cancel the deployment; without one it just
 * stops following and the deployment goes on).
 */
export async function watchDeployment(s: Session, deployment: Deployment, o: WatchOptions): Promise<number> {
  const stop = new AbortController();
  let interrupted: Promise<void> | undefined;
  const onSigint = () => {
    if (interrupted) process.exit(EXIT.interrupted); // a second Ctrl-C leaves at once
    interrupted = (async () => {
      if (o.offerCancel && interactive()) {
        const answer = await ask(`\nCancel the deployment ${deployment.id}? [y/N] `);
        if (/^y(es)?$/i.test(answer)) {
          await orThrow(s.client.POST("/api/deployments/{id}/cancel", { params: { path: { id: deployment.id } } }))
            .then(() => note("==> cancel requested"))
            .catch((err: unknown) => note(`could not cancel: ${err instanceof Error ? err.message : String(err)}`));
        } else note("==> the deployment goes on");
      }
      stop.abort();
    })();
  };
  process.on("SIGINT", onSigint);
  try {
    const final = await follow({
      session: s,
      deploymentId: deployment.id,
      wsUrl: await wsUrlOf(s, o.wsUrl),
      since: o.since,
      signal: stop.signal,
      onLine: o.json ? (l) => printJsonLine({ type: "log", deploymentId: deployment.id, ...l }) : printLine,
      onStatus: o.json
        ? (d) => printJsonLine({ type: "status", status: d.status, deployment: d })
        : (d) => note(describeStatus(d)),
      onReconnect: (attempt, reason) => {
        if (!o.json) note(`==> connection lost (${reason}); reconnecting (attempt ${attempt})`);
      },
    });
    if (interrupted) await interrupted;
    if (!final || interrupted) return EXIT.interrupted;
    return final.status === "succeeded" ? EXIT.succeeded : EXIT.failed;
  } finally {
    process.off("SIGINT", onSigint);
  }
}

/** The command's stdout on stdout, its stderr on stderr, Hoist's own lines (the phases) on stderr. */
function printLine(l: LogLine): void {
  if (l.stream === "stdout") process.stdout.write(`${l.line}\n`);
  else if (l.stream === "stderr") process.stderr.write(`${l.line}\n`);
  else note(`==> ${l.line}`);
}

export function describeStatus(d: Deployment): string {
  switch (d.status) {
    case "queued":
      return `==> ${d.id} queued`;
    case "running":
      return `==> ${d.id} running${d.commitSha ? ` ${d.commitSha.slice(0, 12)}` : ""}`;
    case "succeeded":
      return `==> ${d.id} succeeded${d.durationMs === null ? "" : ` in ${(d.durationMs / 1000).toFixed(1)} s`}`;
    default:
      return `==> ${d.id} ${d.status}${d.error ? `: ${d.error}` : ""}`;
  }
}
