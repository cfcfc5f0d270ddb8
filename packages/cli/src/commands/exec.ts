import { orThrow } from "@hoist/client";
import type { Command } from "commander";
import { note, printJson } from "../output.ts";
import { resolveApp } from "../resolve.ts";
import { examples, exit, sessionOf } from "./shared.ts";

const EXIT_CODES =
  "\nExit code: the command's own (1 when it was stopped: timed out or past the output cap).\n" +
  "The command runs within one request (at most 25 s, output up to 64 KiB); for longer ones use the\n" +
  'WebSocket action {"action":"exec"}.\n';

export function execCommand(program: Command): void {
  program
    .command("exec <app> <command...>")
    .description("run a command once in the app's directory, with its environment (audited)")
    .addHelpText(
      "after",
      examples(
        "hoist exec web -- docker compose ps",
        "hoist exec web -- 'docker compose exec -T db psql -c \"select 1\"'",
      ) + EXIT_CODES,
    )
    .action(async (ref: string, words: string[], _opts: unknown, cmd: Command) => {
      const { s, json } = await sessionOf(cmd);
      const app = await resolveApp(s, ref);
      // As ssh does: the words are joined by spaces and the server's shell reads them.
      const result = await orThrow(
        s.client.POST("/api/apps/{id}/exec", { params: { path: { id: app.id } }, body: { command: words.join(" ") } }),
      );
      exit.code = result.exitCode ?? 1;
      if (json) return printJson(result);
      process.stdout.write(result.output);
      if (result.output && !result.output.endsWith("\n")) process.stdout.write("\n");
      if (result.timedOut) note("==> stopped: the command ran past the time limit");
      if (result.truncated) note("==> stopped: the output passed the cap (64 KiB)");
    });
}
