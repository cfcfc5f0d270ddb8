import { orThrow } from "@hoist/client";
import type { Command } from "commander";
import { note, printJson, printLines, printTable, relative } from "../output.ts";
import { listApps, resolveApp, resolveProject, resolveServer } from "../resolve.ts";
import { examples, int, sessionOf } from "./shared.ts";

interface CreateOptions {
  project: string;
  server: string;
  path: string;
  url?: string;
  autoStop?: number;
  startCommand?: string;
  stopCommand?: string;
  deployCommand?: string;
  repo?: string;
  branch?: string;
  deployOn?: "push" | "ci-success";
}

export function appCommands(program: Command): void {
  const apps = program
    .command("apps")
    .description("apps: a Compose project in a directory on one of your servers")
    .addHelpText(
      "after",
      examples("hoist apps list", "hoist apps start web --timeout 120", "hoist apps extend web 30"),
    );

  apps
    .command("create <name>")
    .description("create an app")
    .requiredOption("--project <project>", "project name or id")
    .requiredOption("--server <server>", "server name or id")
    .requiredOption("--path <dir>", "the app's directory on the server (cdPath)")
    .option("--url <url>", "where the app is served (appUrl)")
    .option("--auto-stop <minutes>", "stop this long after a start or deploy (0 = never)", int("--auto-stop"))
    .option("--start-command <cmd>", "instead of `docker compose up -d`")
    .option("--stop-command <cmd>", "instead of `docker compose down`")
    .option("--deploy-command <cmd>", "instead of git fetch + checkout + `docker compose up -d --build`")
    .option("--repo <owner/name>", "the GitHub repository it deploys from")
    .option("--branch <name>", "the repository's branch", "main")
    .option("--deploy-on <when>", "push or ci-success", "push")
    .addHelpText(
      "after",
      examples(
        "hoist apps create web --project shop --server box --path /srv/web --auto-stop 60",
        "hoist apps create api --project shop --server box --path /srv/api --deploy-command './deploy.sh'",
      ),
    )
    .action(async (name: string, opts: CreateOptions, cmd: Command) => {
      const { s, json } = await sessionOf(cmd);
      const [project, server] = await Promise.all([resolveProject(s, opts.project), resolveServer(s, opts.server)]);
      const commands =
        opts.startCommand || opts.stopCommand || opts.deployCommand
          ? { start: opts.startCommand, stop: opts.stopCommand, deploy: opts.deployCommand }
          : undefined;
      const app = await orThrow(
        s.client.POST("/api/apps", {
          body: {
            name,
            projectId: project.id,
            serverId: server.id,
            cdPath: opts.path,
            appUrl: opts.url,
            autoStopTimeout: opts.autoStop,
            commands,
            repository: opts.repo
              ? { fullName: opts.repo, branch: opts.branch ?? "main", deployOn: opts.deployOn }
              : undefined,
          },
        }),
      );
      if (json) printJson(app);
      else printLines(`Created app ${app.name} (${app.id}) in ${project.name} on ${server.name}`);
    });

  apps
    .command("list")
    .alias("ls")
    .description("list your apps")
    .option("--project <project>", "only this project's (name or id)")
    .action(async (opts: { project?: string }, cmd: Command) => {
      const { s, json } = await sessionOf(cmd);
      const projectId = opts.project ? (await resolveProject(s, opts.project)).id : undefined;
      const items = await listApps(s, projectId);
      if (json) return printJson(items);
      printTable(
        ["ID", "NAME", "STATUS", "STOPS", "PATH"],
        items.map((a) => [a.id, a.name, a.status, relative(a.stopsAt), a.cdPath]),
      );
    });

  apps
    .command("start <app>")
    .description("run the app's start command; it auto-stops after its timeout")
    .option("--timeout <minutes>", "auto-stop after this many minutes (default: the app's)", int("--timeout"))
    .action(async (ref: string, opts: { timeout?: number }, cmd: Command) => {
      const { s, json } = await sessionOf(cmd);
      const app = await resolveApp(s, ref);
      const body = opts.timeout === undefined ? {} : { timeout: opts.timeout };
      const result = await orThrow(s.client.POST("/api/apps/{id}/start", { params: { path: { id: app.id } }, body }));
      if (json) printJson(result);
      else printLines(`${app.name}: ${result.status}${result.stopsAt ? `, stops ${relative(result.stopsAt)}` : ""}`);
    });

  apps
    .command("stop <app>")
    .description("run the app's stop command")
    .action(async (ref: string, _opts: unknown, cmd: Command) => {
      const { s, json } = await sessionOf(cmd);
      const app = await resolveApp(s, ref);
      const result = await orThrow(s.client.POST("/api/apps/{id}/stop", { params: { path: { id: app.id } } }));
      if (json) printJson(result);
      else printLines(`${app.name}: ${result.status}`);
    });

  apps
    .command("logs <app>")
    .description("the app's container logs (`docker compose logs` in its directory), masked")
    .option("-n, --tail <lines>", "the last lines (1–5000)", int("--tail"), 200)
    .option("--since <time>", "from this time on: epoch ms or RFC 3339 (2025-01-31T12:00:00Z)")
    .addHelpText("after", examples("hoist apps logs web", "hoist apps logs web -n 50 --since 2025-01-31T12:00:00Z"))
    .action(async (ref: string, opts: { tail: number; since?: string }, cmd: Command) => {
      const { s, json } = await sessionOf(cmd);
      const app = await resolveApp(s, ref);
      const query = { tail: opts.tail, ...(opts.since ? { since: opts.since } : {}) };
      const result = await orThrow(s.client.GET("/api/apps/{id}/logs", { params: { path: { id: app.id }, query } }));
      if (json) return printJson(result);
      printLines(...result.items.map((l) => `${l.service} | ${l.line}`));
      if (result.truncated)
        note("==> older lines were left out (the answer is capped); use --since or a smaller --tail");
    });

  apps
    .command("extend")
    .argument("<app>", "app name or id")
    .argument("<minutes>", "how much later", int("minutes"))
    .description("move the auto-stop later")
    .action(async (ref: string, minutes: number, _opts: unknown, cmd: Command) => {
      const { s, json } = await sessionOf(cmd);
      const app = await resolveApp(s, ref);
      const result = await orThrow(
        s.client.POST("/api/apps/{id}/extend", {
          params: { path: { id: app.id } },
          body: { minutes },
        }),
      );
      if (json) printJson(result);
      else printLines(`${app.name}: extended by ${minutes} min`);
    });

  apps
    .command("rm <app>")
    .alias("remove")
    .description("delete an app")
    .action(async (ref: string, _opts: unknown, cmd: Command) => {
      const { s, json } = await sessionOf(cmd);
      const app = await resolveApp(s, ref);
      const result = await orThrow(s.client.DELETE("/api/apps/{id}", { params: { path: { id: app.id } } }));
      if (json) printJson(result);
      else printLines(`Deleted app ${app.name} (${app.id})`);
    });
}
