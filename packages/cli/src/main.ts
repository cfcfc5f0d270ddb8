import { Command, CommanderError } from "commander";
import { appCommands } from "./commands/apps.ts";
import { authCommands } from "./commands/auth.ts";
import { deployCommands } from "./commands/deploy.ts";
import { envCommands } from "./commands/env.ts";
import { execCommand } from "./commands/exec.ts";
import { projectCommands } from "./commands/projects.ts";
import { serverCommands } from "./commands/servers.ts";
import { exit } from "./commands/shared.ts";
import { statusCommand } from "./commands/status.ts";
import { CliError, describeError } from "./errors.ts";

const ENVIRONMENT = `
Environment:
  HOIST_URL      Hoist's URL (overrides the stored one)
  HOIST_TOKEN    a bearer (API token hst_… or access token) instead of the stored credentials (CI)
  HOIST_WS_URL   the WebSocket endpoint, when Hoist cannot say it
  HOIST_DEBUG=1  print stack traces
Config: $XDG_CONFIG_HOME/hoist/config.json (default ~/.config/hoist/config.json), mode 0600.
Exit codes: 0 ok, 1 a problem (or a failed deployment), 2 usage, 130 Ctrl-C.
`;

export function buildProgram(): Command {
  const program = new Command("hoist")
    .description("Hoist from the command line: servers, projects, apps, env, deploys and their logs")
    .option("--url <url>", "Hoist's URL (env HOIST_URL; default: the one you logged in to)")
    .option("--json", "machine-readable output")
    .exitOverride()
    .showHelpAfterError("(add --help for usage)")
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .addHelpText(
      "after",
      `
Examples:
  $ hoist login --url http://127.0.0.1:3000
  $ hoist servers add box --address 203.0.113.7 --user deploy --key-file ~/.ssh/id_ed25519
  $ hoist projects create shop
  $ hoist apps create web --project shop --server box --path /srv/web
  $ hoist env set web DATABASE_URL=postgres://db/web
  $ hoist deploy web --follow
  $ hoist exec web -- docker compose ps
${ENVIRONMENT}`,
    );
  authCommands(program);
  serverCommands(program);
  projectCommands(program);
  appCommands(program);
  envCommands(program);
  deployCommands(program);
  execCommand(program);
  statusCommand(program);
  return program;
}

/** Runs `hoist …` and answers the exit code; problems are printed as `error: <title>: <detail>`, never a stack. */
export async function main(argv: string[]): Promise<number> {
  exit.code = 0;
  try {
    await buildProgram().parseAsync(argv);
    return exit.code;
  } catch (err) {
    // Commander has printed its own message (usage) or the help already.
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    for (const line of describeError(err)) process.stderr.write(`${line}\n`);
    return err instanceof CliError ? err.exitCode : 1;
  }
}
