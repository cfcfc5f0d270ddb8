import { orThrow, type Schemas } from "@hoist/client";
import type { Command } from "commander";
import { CliError } from "../errors.ts";
import { FINISHED, type LogLine } from "../follow.ts";
import { note, printJson, printLines } from "../output.ts";
import { recentDeployments, resolveApp } from "../resolve.ts";
import type { Session } from "../session.ts";
import { describeStatus, watchDeployment } from "../watch.ts";
import { examples, exit, int, sessionOf } from "./shared.ts";

type Deployment = Schemas["Deployment"];

interface FollowFlags {
  follow?: boolean;
  wsUrl?: string;
}

const EXIT_CODES =
  "\nExit codes with --follow: 0 succeeded, 1 failed or cancelled, 130 Ctrl-C (on a terminal it first\nasks whether to cancel the deployment; without one the deployment goes on).\n";

/** Prints what was queued, or follows it to its end (the exit code is then its result). */
async function queued(s: Session, deployment: Deployment, flags: FollowFlags, json: boolean): Promise<void> {
  if (flags.follow) {
    exit.code = await watchDeployment(s, deployment, { json, wsUrl: flags.wsUrl, offerCancel: true });
  } else if (json) printJson(deployment);
  else printLines(`Queued ${deployment.id}; follow it with \`hoist logs ${deployment.id} -f\``);
}

export function deployCommands(program: Command): void {
  program
    .command("deploy <app>")
    .description("deploy an app (name or id) now; --follow streams its log until it ends")
    .option("--ref <ref>", "branch or tag to deploy (default: the app's branch)")
    .option("--sha <sha>", "exact commit to deploy")
    .option("-f, --follow", "stream the log live and exit with the deployment's result")
    .option("--ws-url <url>", "WebSocket endpoint (default: learnt from Hoist; env HOIST_WS_URL)")
    .addHelpText(
      "after",
      examples(
        "hoist deploy web",
        "hoist deploy web --sha $GITHUB_SHA --follow",
        "hoist deploy web --ref v1.2.0 -f --json",
      ) + EXIT_CODES,
    )
    .action(async (ref: string, opts: FollowFlags & { ref?: string; sha?: string }, cmd: Command) => {
      const { s, json } = await sessionOf(cmd);
      const app = await resolveApp(s, ref);
      const body = { ...(opts.ref ? { ref: opts.ref } : {}), ...(opts.sha ? { sha: opts.sha } : {}) };
      const { deployment } = await orThrow(
        s.client.POST("/api/apps/{id}/deployments", { params: { path: { id: app.id } }, body }),
      );
      if (opts.follow && !json) note(`==> deploying ${app.name}`);
      await queued(s, deployment, opts, json);
    });

  program
    .command("logs <deployment>")
    .description("a deployment's log (an app name or id means its latest deployment); -f follows it live")
    .option("-f, --follow", "follow until the deployment ends (exit code: its result)")
    .option("--after <seq>", "only lines after this seq", int("--after"))
    .option("--ws-url <url>", "WebSocket endpoint (default: learnt from Hoist; env HOIST_WS_URL)")
    .addHelpText(
      "after",
      examples("hoist logs dep_4VdXb1m9Qj2T0cZ8sK3wLg", "hoist logs web -f", "hoist logs web --json"),
    )
    .action(async (ref: string, opts: FollowFlags & { after?: number }, cmd: Command) => {
      const { s, json } = await sessionOf(cmd);
      const deployment = await deploymentOf(s, ref);
      if (opts.follow) {
        exit.code = await watchDeployment(s, deployment, {
          json,
          wsUrl: opts.wsUrl,
          since: opts.after,
          offerCancel: false,
        });
        return;
      }
      const lines = await storedLog(s, deployment.id, opts.after ?? 0);
      if (json) return printJson(lines);
      for (const l of lines)
        (l.stream === "stderr" ? process.stderr : process.stdout).write(
          `${l.stream === "system" ? "==> " : ""}${l.line}\n`,
        );
      if (FINISHED.includes(deployment.status)) note(describeStatus(deployment));
    });

  program
    .command("rollback <app>")
    .description("deploy an earlier commit again: the last successful deployment before the current one, or --to")
    .option("--to <deployment>", "the deployment whose commit to deploy again")
    .option("-f, --follow", "stream the log live and exit with the deployment's result")
    .option("--ws-url <url>", "WebSocket endpoint (default: learnt from Hoist; env HOIST_WS_URL)")
    .addHelpText(
      "after",
      examples("hoist rollback web", "hoist rollback web --to dep_4VdXb1m9Qj2T0cZ8sK3wLg --follow") + EXIT_CODES,
    )
    .action(async (ref: string, opts: FollowFlags & { to?: string }, cmd: Command) => {
      const { s, json } = await sessionOf(cmd);
      const app = await resolveApp(s, ref);
      const target = opts.to ? await ownDeployment(s, opts.to, app.id) : await previousGood(s, app.id, app.name);
      const { deployment } = await orThrow(
        s.client.POST("/api/deployments/{id}/redeploy", { params: { path: { id: target.id } } }),
      );
      if (!json) note(`==> rolling ${app.name} back to ${target.commitSha?.slice(0, 12) ?? target.id} (${target.id})`);
      await queued(s, deployment, opts, json);
    });
}

async function deploymentOf(s: Session, ref: string): Promise<Deployment> {
  if (ref.startsWith("dep_")) return orThrow(s.client.GET("/api/deployments/{id}", { params: { path: { id: ref } } }));
  const app = await resolveApp(s, ref);
  const [latest] = await recentDeployments(s, app.id, 1);
  if (!latest) throw new CliError(`${app.name} has no deployments yet`);
  return latest;
}

async function ownDeployment(s: Session, id: string, appId: string): Promise<Deployment> {
  const d = await orThrow(s.client.GET("/api/deployments/{id}", { params: { path: { id } } }));
  if (d.appId !== appId) throw new CliError(`${id} is a deployment of another app (${d.appId})`);
  return d;
}

/** The newest successful deployment of another commit than the newest successful one. */
async function previousGood(s: Session, appId: string, name: string): Promise<Deployment> {
  const good = (await recentDeployments(s, appId, 100)).filter((d) => d.status === "succeeded");
  const [current, ...older] = good;
  const target = older.find((d) => !current?.commitSha || d.commitSha !== current.commitSha) ?? undefined;
  if (!target) throw new CliError(`${name} has no earlier successful deployment to roll back to; name one with --to`);
  return target;
}

export async function storedLog(s: Session, id: string, after: number): Promise<LogLine[]> {
  const all: LogLine[] = [];
  let from = after;
  for (;;) {
    const page = await orThrow(
      s.client.GET("/api/deployments/{id}/logs", { params: { path: { id }, query: { after: from, limit: 1000 } } }),
    );
    all.push(...(page.items as LogLine[]));
    const last = page.items.at(-1)?.seq;
    if (last === undefined || !page.nextCursor) return all;
    from = last;
  }
}
