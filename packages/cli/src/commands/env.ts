import { readFile } from "node:fs/promises";
import { orThrow } from "@hoist/client";
import type { Command } from "commander";
import { parseAssignment, parseDotenv } from "../dotenv.ts";
import { CliError } from "../errors.ts";
import { printJson, printLines, printTable } from "../output.ts";
import { resolveApp } from "../resolve.ts";
import type { Session } from "../session.ts";
import { examples, sessionOf } from "./shared.ts";

/** Upserts (null deletes) and answers the variables, masked. */
const patch = (s: Session, id: string, body: Record<string, string | null>) =>
  orThrow(s.client.PATCH("/api/apps/{id}/env", { params: { path: { id } }, body }));

function printVars(vars: Record<string, string>, json: boolean): void {
  if (json) printJson(vars);
  else
    printTable(
      ["NAME", "VALUE"],
      Object.entries(vars).map(([k, v]) => [k, v]),
    );
}

export function envCommands(program: Command): void {
  const env = program
    .command("env")
    .description("an app's environment variables (stored encrypted, written as .env in its directory)")
    .addHelpText(
      "after",
      examples(
        "hoist env list web",
        "hoist env set web DATABASE_URL=postgres://db/web LOG_LEVEL=info",
        "hoist env unset web LOG_LEVEL",
        "hoist env import web .env",
      ),
    );

  env
    .command("list <app>")
    .alias("ls")
    .description("names with masked values (--reveal shows them)")
    .option("--reveal", "show the values")
    .action(async (ref: string, opts: { reveal?: boolean }, cmd: Command) => {
      const { s, json } = await sessionOf(cmd);
      const app = await resolveApp(s, ref);
      const query = opts.reveal ? { reveal: "true" as const } : {};
      printVars(await orThrow(s.client.GET("/api/apps/{id}/env", { params: { path: { id: app.id }, query } })), json);
    });

  env
    .command("set <app> <assignments...>")
    .description("set variables: KEY=VALUE …")
    .action(async (ref: string, assignments: string[], _opts: unknown, cmd: Command) => {
      const body = Object.fromEntries(assignments.map(parseAssignment));
      const { s, json } = await sessionOf(cmd);
      const app = await resolveApp(s, ref);
      const vars = await patch(s, app.id, body);
      if (json) printJson(vars);
      else printLines(`Set ${Object.keys(body).join(", ")} on ${app.name}`);
    });

  env
    .command("unset <app> <keys...>")
    .description("remove variables: KEY …")
    .action(async (ref: string, keys: string[], _opts: unknown, cmd: Command) => {
      const { s, json } = await sessionOf(cmd);
      const app = await resolveApp(s, ref);
      const vars = await patch(s, app.id, Object.fromEntries(keys.map((k) => [k, null])));
      if (json) printJson(vars);
      else printLines(`Removed ${keys.join(", ")} from ${app.name}`);
    });

  env
    .command("import <app> <file>")
    .description("set every variable of a .env file (others are kept)")
    .option("--replace", "replace all variables with the file's")
    .action(async (ref: string, file: string, opts: { replace?: boolean }, cmd: Command) => {
      const text = await readFile(file, "utf8").catch(() => {
        throw new CliError(`cannot read ${file}`);
      });
      const vars = parseDotenv(text);
      const { s, json } = await sessionOf(cmd);
      const app = await resolveApp(s, ref);
      const result = opts.replace
        ? await orThrow(s.client.PUT("/api/apps/{id}/env", { params: { path: { id: app.id } }, body: vars }))
        : await patch(s, app.id, vars);
      if (json) printJson(result);
      else printLines(`Imported ${Object.keys(vars).length} variables from ${file} into ${app.name}`);
    });
}
