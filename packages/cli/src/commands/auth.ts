import { createHoistClient, orThrow } from "@hoist/client";
import type { Command } from "commander";
import { configPath, readConfig, type StoredConfig, writeConfig } from "../config.ts";
import { CliError, UnreachableError } from "../errors.ts";
import { note, printJson, printLines } from "../output.ts";
import { ask, askHidden, interactive, readStdin } from "../prompt.ts";
import { checkedUrl, discoverWsUrl } from "../session.ts";
import { examples, globalsOf, sessionOf } from "./shared.ts";

interface LoginOptions {
  token?: string;
  username?: string;
  passwordStdin?: boolean;
  tokenStdin?: boolean;
}

export function authCommands(program: Command): void {
  program
    .command("login")
    .description("sign in with a password (interactive, or --password-stdin) or store an API token")
    .option("--token <hst_…>", "an API token (POST /api/tokens): stored and used as the bearer")
    .option("--token-stdin", "read the API token from stdin")
    .option("-u, --username <name>", "username or email (asked when omitted)")
    .option("--password-stdin", "read the password from stdin (no TTY needed)")
    .addHelpText(
      "after",
      examples(
        "hoist login --url https://hoist.example.com",
        'echo "$PASSWORD" | hoist login --url http://127.0.0.1:3000 -u admin --password-stdin',
        "hoist login --url https://hoist.example.com --token hst_…",
      ),
    )
    .action(async (opts: LoginOptions, cmd: Command) => {
      const g = globalsOf(cmd);
      const path = configPath();
      const stored = await readConfig(path);
      const url = checkedUrl(g.url ?? process.env.HOIST_URL ?? stored.url ?? (await askUrl()));
      const anonymous = createHoistClient({ baseUrl: url });
      const wsUrl = await discoverWsUrl(url);
      let next: StoredConfig;
      let user: { username: string; role: string; id: string };
      const apiToken = opts.tokenStdin ? (await readStdin()).trim() : opts.token;
      if (apiToken) {
        const client = createHoistClient({ baseUrl: url, token: apiToken });
        ({ user } = await orThrow(client.GET("/api/auth/verify")).catch(unreachable(url)));
        next = { url, apiToken, username: user.username, ...(wsUrl ? { wsUrl } : {}) };
      } else {
        const login = opts.username ?? (interactive() ? await ask("Username or email: ") : undefined);
        if (!login) throw new CliError("give --username (and --password-stdin), or run `hoist login` in a terminal", 2);
        const password = opts.passwordStdin
          ? await readStdin()
          : interactive()
            ? await askHidden("Password: ")
            : undefined;
        if (!password) throw new CliError("no password: pipe it with --password-stdin, or run in a terminal", 2);
        const body = login.includes("@") ? { email: login, password } : { username: login, password };
        const session = await orThrow(anonymous.POST("/api/auth/login", { body })).catch(unreachable(url));
        user = session.user;
        next = {
          url,
          username: user.username,
          accessToken: session.token,
          refreshToken: session.refreshToken,
          ...(wsUrl ? { wsUrl } : {}),
        };
      }
      await writeConfig(next, path);
      if (g.json) printJson({ url, user, config: path });
      else printLines(`Signed in to ${url} as ${user.username} (${user.role}); saved in ${path}`);
    });

  program
    .command("logout")
    .description("sign out: revoke the session and forget the stored credentials")
    .addHelpText("after", examples("hoist logout"))
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globalsOf(cmd);
      const path = configPath();
      const stored = await readConfig(path);
      let revoked = false;
      if (stored.url && stored.accessToken) {
        const client = createHoistClient({ baseUrl: stored.url, token: stored.accessToken });
        const body = stored.refreshToken ? { refreshToken: stored.refreshToken } : {};
        revoked = await client
          .POST("/api/auth/logout", { body })
          .then((r) => r.response.ok)
          .catch(() => false);
      }
      const { accessToken: _a, refreshToken: _r, apiToken, ...rest } = stored;
      await writeConfig(rest, path);
      if (g.json) printJson({ signedOut: true, revoked });
      else {
        printLines(stored.url ? `Signed out of ${stored.url}` : "Not signed in");
        if (apiToken)
          note("The API token was forgotten here; it stays valid until you revoke it (DELETE /api/tokens/:id).");
      }
    });

  program
    .command("whoami")
    .description("show who you are signed in as, and where")
    .addHelpText("after", examples("hoist whoami", "hoist whoami --json"))
    .action(async (_opts: unknown, cmd: Command) => {
      const { s, json } = await sessionOf(cmd);
      s.requireToken();
      const { user } = await orThrow(s.client.GET("/api/auth/verify"));
      if (json) printJson({ url: s.url, user });
      else printLines(`${user.username} <${user.email}> (${user.role}) at ${s.url}`);
    });
}

async function askUrl(): Promise<string> {
  if (!interactive()) throw new CliError("give --url, or set HOIST_URL", 2);
  return (await ask("Hoist URL [http://127.0.0.1:3000]: ")) || "http://127.0.0.1:3000";
}

/** openapi-fetch's own fetch fails with a TypeError when the server cannot be reached. */
const unreachable = (url: string) => (err: unknown) => {
  if (err instanceof TypeError) throw new UnreachableError(url, err);
  throw err;
};
