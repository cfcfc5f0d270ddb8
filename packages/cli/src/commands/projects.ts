import { orThrow } from "@hoist/client";
import type { Command } from "commander";
import { printJson, printLines, printTable } from "../output.ts";
import { listProjects, resolveProject } from "../resolve.ts";
import { examples, sessionOf } from "./shared.ts";

export function projectCommands(program: Command): void {
  const projects = program
    .command("projects")
    .description("projects group apps")
    .addHelpText("after", examples("hoist projects create shop", "hoist projects list --json"));

  projects
    .command("create <name>")
    .description("create a project")
    .option("--description <text>", "what it is")
    .action(async (name: string, opts: { description?: string }, cmd: Command) => {
      const { s, json } = await sessionOf(cmd);
      const project = await orThrow(s.client.POST("/api/projects", { body: { name, description: opts.description } }));
      if (json) printJson(project);
      else printLines(`Created project ${project.name} (${project.id})`);
    });

  projects
    .command("list")
    .alias("ls")
    .description("list your projects")
    .action(async (_opts: unknown, cmd: Command) => {
      const { s, json } = await sessionOf(cmd);
      const items = await listProjects(s);
      if (json) return printJson(items);
      printTable(
        ["ID", "NAME", "DESCRIPTION"],
        items.map((p) => [p.id, p.name, p.description]),
      );
    });

  projects
    .command("rm <project>")
    .alias("remove")
    .description("delete a project and its apps (refused while any runs, unless --force)")
    .option("--force", "delete even with running apps")
    .action(async (ref: string, opts: { force?: boolean }, cmd: Command) => {
      const { s, json } = await sessionOf(cmd);
      const project = await resolveProject(s, ref);
      const result = await orThrow(
        s.client.DELETE("/api/projects/{id}", {
          params: { path: { id: project.id }, query: opts.force ? { force: "true" } : {} },
        }),
      );
      if (json) printJson(result ?? { success: true });
      else printLines(`Deleted project ${project.name} (${project.id})`);
    });
}
