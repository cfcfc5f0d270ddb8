import { readFile } from "node:fs/promises";
import { orThrow } from "@hoist/client";
import type { Command } from "commander";
import { CliError } from "../errors.ts";
import { printJson, printLines, printTable, relative } from "../output.ts";
import { readStdin } from "../prompt.ts";
import { listServers, resolveServer } from "../resolve.ts";
import { examples, int, sessionOf } from "./shared.ts";

interface AddOptions {
  address: string;
  user: string;
  port?: number;
  keyFile?: string;
  passwordStdin?: boolean;
}

export function serverCommands(program: Command): void {
  const servers = program
    .command("servers")
    .description("your servers (reached over SSH)")
    .addHelpText("after", examples("hoist servers list", "hoist servers status box"));

  servers
    .command("add <name>")
    .description("register a server; its credentials are encrypted and never shown again")
    .requiredOption("--address <host>", "hostname or IP address")
    .requiredOption("--user <name>", "SSH user")
    .option("--port <n>", "SSH port", int("--port"), 22)
    .option("--key-file <path>", "private key file (OpenSSH or PEM)")
    .option("--password-stdin", "read the SSH password from stdin instead")
    .addHelpText(
      "after",
      examples("hoist servers add box --address 203.0.113.7 --user deploy --key-file ~/.ssh/id_ed25519"),
    )
    .action(async (name: string, opts: AddOptions, cmd: Command) => {
      const { s, json } = await sessionOf(cmd);
      if (!opts.keyFile && !opts.passwordStdin) throw new CliError("give --key-file or --password-stdin", 2);
      const privateKey = opts.keyFile ? await readFile(opts.keyFile, "utf8") : undefined;
      const password = opts.passwordStdin ? await readStdin() : undefined;
      const server = await orThrow(
        s.client.POST("/api/servers", {
          body: { name, address: opts.address, sshUser: opts.user, sshPort: opts.port, privateKey, password },
        }),
      );
      if (json) printJson(server);
      else
        printLines(`Added server ${server.name} (${server.id}); check it with \`hoist servers status ${server.id}\``);
    });

  servers
    .command("list")
    .alias("ls")
    .description("list your servers")
    .action(async (_opts: unknown, cmd: Command) => {
      const { s, json } = await sessionOf(cmd);
      const items = await listServers(s);
      if (json) return printJson(items);
      printTable(
        ["ID", "NAME", "ADDRESS", "STATUS", "APPS RUNNING", "CHECKED"],
        items.map((v) => [
          v.id,
          v.name,
          `${v.sshUser}@${v.address}:${v.sshPort}`,
          v.status,
          v.runningAppsCount,
          relative(v.lastChecked),
        ]),
      );
    });

  servers
    .command("status <server>")
    .description("connect over SSH now (pins the host key the first time) and report")
    .action(async (ref: string, _opts: unknown, cmd: Command) => {
      const { s, json } = await sessionOf(cmd);
      const server = await resolveServer(s, ref);
      const status = await orThrow(s.client.GET("/api/servers/{id}/status", { params: { path: { id: server.id } } }));
      if (json) return printJson(status);
      printLines(`${server.name}: ${status.status}`);
      for (const [key, value] of Object.entries(status)) if (key !== "status") printLines(`  ${key}: ${fmt(value)}`);
    });

  servers
    .command("rm <server>")
    .alias("remove")
    .description("delete a server (refused while it has apps)")
    .action(async (ref: string, _opts: unknown, cmd: Command) => {
      const { s, json } = await sessionOf(cmd);
      const server = await resolveServer(s, ref);
      const result = await orThrow(s.client.DELETE("/api/servers/{id}", { params: { path: { id: server.id } } }));
      if (json) printJson(result ?? { success: true });
      else printLines(`Deleted server ${server.name} (${server.id})`);
    });
}

const fmt = (value: unknown) => (typeof value === "object" && value !== null ? JSON.stringify(value) : String(value));
