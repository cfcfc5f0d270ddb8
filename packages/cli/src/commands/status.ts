import { orThrow } from "@hoist/client";
import type { Command } from "commander";
import { printJson, printLines, printTable, relative } from "../output.ts";
import { listApps, listServers, recentDeployments } from "../resolve.ts";
import { examples, sessionOf } from "./shared.ts";

export function statusCommand(program: Command): void {
  program
    .command("status")
    .description("who you are, your servers and apps, and the latest deployments")
    .addHelpText("after", examples("hoist status", "hoist status --json"))
    .action(async (_opts: unknown, cmd: Command) => {
      const { s, json } = await sessionOf(cmd);
      s.requireToken();
      const [{ user }, servers, apps, deployments] = await Promise.all([
        orThrow(s.client.GET("/api/auth/verify")),
        listServers(s),
        listApps(s),
        recentDeployments(s, undefined, 5),
      ]);
      if (json) return printJson({ url: s.url, user, servers, apps, deployments });
      const names = new Map(apps.map((a) => [a.id, a.name]));
      printLines(`${user.username} at ${s.url}`, "", "Servers");
      printTable(
        ["NAME", "STATUS", "APPS RUNNING"],
        servers.map((v) => [v.name, v.status, v.runningAppsCount]),
      );
      printLines("", "Apps");
      printTable(
        ["NAME", "STATUS", "STOPS"],
        apps.map((a) => [a.name, a.status, relative(a.stopsAt)]),
      );
      printLines("", "Latest deployments");
      printTable(
        ["ID", "APP", "STATUS", "COMMIT", "QUEUED"],
        deployments.map((d) => [
          d.id,
          names.get(d.appId) ?? d.appId,
          d.status,
          d.commitSha?.slice(0, 12),
          relative(d.queuedAt),
        ]),
      );
    });
}
