import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import { CreateTableCommand, type DynamoDBClient, UpdateTimeToLiveCommand } from "@aws-sdk/client-dynamodb";
import { withBindingCache } from "@hoist/core/adapters/local/binding-cache";
import { FileKeyVault, readKeyFile } from "@hoist/core/adapters/local/file-key-vault";
import { TableQueue } from "@hoist/core/adapters/local/table-queue";
import { TableScheduler } from "@hoist/core/adapters/local/table-scheduler";
import { fileKeySet } from "@hoist/core/auth/keys";
import type { Config } from "@hoist/core/config";
import { createHttpApp } from "@hoist/core/http/app";
import { newToken } from "@hoist/core/ids";
import { jobHandlers } from "@hoist/core/jobs/handlers";
import { createLogger, type Logger } from "@hoist/core/logger";
import type { Deps } from "@hoist/core/ports";
import { createWsHandler } from "@hoist/core/realtime/ws-handler";
import { Ssh2Executor } from "@hoist/core/servers/ssh";
import { DynamoStore } from "@hoist/core/store/dynamo-store";
import { createTableInput, table } from "@hoist/core/store/table";
import { UsageMeter } from "@hoist/core/usage/meter";
import { type DynamoDbLocal, dynamoClient, startDynamoDbLocal } from "./dynamodb-local.ts";
import { createHttpServer } from "./http-server.ts";
import { operateQueue, startOperateQueue } from "./operate-queue.ts";
import { startLocalWorkers } from "./workers.ts";
import { WsGateway } from "./ws-gateway.ts";

export interface Runtime {
  url: string;
  wsUrl: string;
  /** The DynamoDB Local the runtime started (or HOIST_DYNAMODB_ENDPOINT); tests look at it from outside. */
  dynamodbEndpoint: string;
  deps: Deps;
  stop(): Promise<void>;
}

/**
 * Hoist on one machine: DynamoDB Local on disk, the Hono app on Node, the
 * WebSocket gateway, and the table-backed queue and scheduler driving the same
 * worker and auto-stop handlers the Lambdas run.
 */
export async function startRuntime(config: Config, logger: Logger = createLogger(config.logLevel)): Promise<Runtime> {
  const dataDir = resolve(config.dataDir);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const stops: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const fn of stops.reverse())
      await fn().catch((err: unknown) => logger.error("shutdown step failed", { error: err }));
  };

  try {
    stops.push(await lockDataDir(dataDir));
    let db: DynamoDbLocal | undefined;
    let client: DynamoDBClient;
    let dynamodbEndpoint: string;
    if (config.dynamodb.endpoint) {
      client = dynamoClient(config.dynamodb.endpoint);
      dynamodbEndpoint = config.dynamodb.endpoint;
    } else {
      // Its own database on disk, under this install's access key id: see dynamodb-local.ts.
      db = await startDynamoDbLocal({ dataDir: join(dataDir, "dynamodb"), port: config.dynamodb.port });
      stops.push(() => (db as DynamoDbLocal).stop());
      client = db.client;
      dynamodbEndpoint = db.endpoint;
    }
    await ensureTable(client, config.tableName);
    // Every write to the table goes through this process, so what deliveries read can be remembered exactly.
    const store = withBindingCache(
      new DynamoStore(client, config.tableName, { cursorKey: await readKeyFile(join(dataDir, "cursor.key")) }),
    );

    const ws = new WsGateway({
      handler: (event) => wsHandler(event),
      logger,
      idleTimeoutSeconds: config.ws.idleTimeoutSeconds,
      maxAgeSeconds: config.ws.maxAgeSeconds,
    });

    const queue = new TableQueue({
      store,
      name: "deploy",
      maxAttempts: config.queue.maxAttempts,
      visibilitySeconds: config.queue.visibilitySeconds,
      logger,
      reclaimOnStart: true,
    });
    const schedules = new TableQueue({
      store,
      name: "schedules",
      maxAttempts: config.queue.maxAttempts,
      visibilitySeconds: 300,
      logger,
      reclaimOnStart: true,
    });
    const scheduler = new TableScheduler(schedules);
    // Log tails and execs: a queue of their own, so they never take the deploy queue's slots.
    const operate = operateQueue(store, {
      maxAttempts: config.queue.maxAttempts,
      visibilitySeconds: config.queue.visibilitySeconds,
      logger,
    });
    const stopping = new AbortController();
    // Warm SSH connections, a minute per server; closed after the workers stop (stops run in reverse).
    const executor = new Ssh2Executor({ networks: config.ssh, idleMs: 60_000 });
    stops.push(() => executor.close());

    // Requests counted for GET /api/usage: written every second, and on stop once the server has closed.
    const usage = new UsageMeter({ store, logger, flushIntervalMs: 1000 });
    stops.push(() => usage.close());

    const deps: Deps = {
      config,
      logger,
      store,
      queue,
      operateQueue: operate,
      stopping: stopping.signal,
      scheduler,
      broadcaster: ws.broadcaster,
      executor,
      keyVault: await FileKeyVault.open(dataDir),
      jwtKeys: await fileKeySet(dataDir),
      usage,
      // This process holds the data directory: work recorded by any other instance was left by a dead one.
      exclusiveInstanceId: newToken(),
    };
    const wsHandler = createWsHandler(deps);

    stops.push(await startLocalWorkers(deps, queue, scheduler));
    // Stopped before the deploy workers (stops run in reverse): running tails and execs end at once.
    stops.push(await startOperateQueue(deps, operate, jobHandlers, stopping));

    const app = createHttpApp(deps);
    // Every route group built before the first request, not on it.
    await app.ready();
    const server = createHttpServer(app.fetch, logger);
    ws.attach(server);
    await new Promise<void>((ok, fail) => {
      server.once("error", fail);
      server.listen(config.port, config.host, () => ok());
    });
    stops.push(async () => {
      await ws.close();
      await new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 2000).unref();
      });
    });

    const { port } = server.address() as AddressInfo;
    const host = config.host === "0.0.0.0" || config.host === "::" ? "localhost" : config.host;
    return { url: `http://${host}:${port}`, wsUrl: `ws://${host}:${port}/ws`, dynamodbEndpoint, deps, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * One runtime per data directory: its queue treats every lease it did not
 * take as left by a dead process (and reclaims it at once), which holds only
 * while no other runtime works on the same data.
 */
async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const file = join(dataDir, "hoist.pid");
  const holder = Number.parseInt(await readFile(file, "utf8").catch(() => ""), 10);
  if (holder && holder !== process.pid && isAlive(holder))
    throw new Error(`Another Hoist (pid ${holder}) is running on ${dataDir}; stop it first`);
  await writeFile(file, `${process.pid}\n`, { mode: 0o600 });
  return () => rm(file, { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function ensureTable(client: DynamoDBClient, tableName: string): Promise<void> {
  try {
    await client.send(new CreateTableCommand(createTableInput(tableName)));
    await client.send(
      new UpdateTimeToLiveCommand({
        TableName: tableName,
        TimeToLiveSpecification: { AttributeName: table.ttlAttribute, Enabled: true },
      }),
    );
  } catch (err) {
    if (!(err instanceof Error && err.name === "ResourceInUseException")) throw err;
  }
}
