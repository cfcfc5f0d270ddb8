import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { writeStandInDocker } from "@hoist/core/testing/operate";
import { startTestSshServer, type TestSshServer } from "@hoist/core/testing/ssh-server";
import type { Runtime } from "@hoist/local/runtime";
import { startTestRuntime } from "@hoist/local/testing/test-runtime";

const BIN = resolve(fileURLToPath(import.meta.url), "../../../bin/hoist.js");
export const PASSWORD = "correct horse battery staple";

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The embedded runtime (HTTP + WebSocket gateway) on loopback, a loopback SSH target, and a config dir for the CLI. */
export interface Harness {
  runtime: Runtime;
  ssh: TestSshServer;
  configHome: string;
  keyFile: string;
  /** Runs `hoist …` as a child process against `url` (default: the runtime). */
  cli(args: string[], opts?: { input?: string; url?: string; env?: Record<string, string> }): Promise<CliResult>;
  /** Starts `hoist …` and hands back the child (for tests that act while it runs). */
  spawnCli(args: string[], opts?: { url?: string }): ChildProcess;
  register(username: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startHarness(dynamoEndpoint: string): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), "hoist-cli-"));
  const runtime = await startTestRuntime({ name: "cli", dataDir: join(dir, "data"), dynamoEndpoint: dynamoEndpoint });
  // A stand-in `docker` on the target (core/testing/operate.ts): `compose logs` prints the app's compose.log.
  const bin = join(dir, "bin");
  await mkdir(bin);
  await writeStandInDocker(bin);
  const ssh = await startTestSshServer({ pathPrefix: [bin] });
  const configHome = join(dir, "config");
  const keyFile = join(dir, "id_ed25519");
  await writeFile(keyFile, ssh.clientKey.private, { mode: 0o600 });

  const envOf = (url: string, extra: Record<string, string> = {}) => {
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.HOIST_TOKEN;
    delete env.HOIST_WS_URL;
    return { ...env, HOIST_URL: url, XDG_CONFIG_HOME: configHome, ...extra };
  };
  const spawnCli: Harness["spawnCli"] = (args, opts = {}) =>
    spawn(process.execPath, [BIN, ...args], { env: envOf(opts.url ?? runtime.url), stdio: ["pipe", "pipe", "pipe"] });
  const cli: Harness["cli"] = (args, opts = {}) =>
    new Promise((ok, fail) => {
      const child = spawn(process.execPath, [BIN, ...args], {
        env: envOf(opts.url ?? runtime.url, opts.env),
        stdio: ["pipe", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr.on("data", (d: Buffer) => {
        stderr += d.toString();
      });
      child.on("error", fail);
      child.on("close", (code) => ok({ code, stdout, stderr }));
      child.stdin.end(opts.input ?? "");
    });
  const register = async (username: string) => {
    const res = await fetch(`${runtime.url}/api/auth/register`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, email: `${username}@example.com`, password: PASSWORD }),
    });
    if (res.status !== 201) throw new Error(`register ${username}: ${res.status} ${await res.text()}`);
  };
  const stop = async () => {
    await ssh.stop();
    await runtime.stop();
    await rm(dir, { recursive: true, force: true });
  };
  return { runtime, ssh, configHome, keyFile, cli, spawnCli, register, stop };
}

/** A TCP proxy on loopback whose connections can be cut at will (a dropped network). */
export async function startProxy(target: string): Promise<{ url: string; cut(): number; stop(): Promise<void> }> {
  const { hostname, port } = new URL(target);
  const pairs = new Set<[Socket, Socket]>();
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(Number(port), hostname);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}`,
    cut() {
      const n = pairs.size;
      for (const [a, b] of [...pairs]) {
        a.resetAndDestroy();
        b.destroy();
      }
      pairs.clear();
      return n;
    },
    stop: () =>
      new Promise((ok) => {
        for (const [a, b] of pairs) {
          a.destroy();
          b.destroy();
        }
        server.close(() => ok());
      }),
  };
}
