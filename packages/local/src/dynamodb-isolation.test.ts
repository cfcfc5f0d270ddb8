import { existsSync, statSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CreateTableCommand,
  DynamoDBClient,
  GetItemCommand,
  ListTablesCommand,
  PutItemCommand,
  ScanCommand,
} from "@aws-sdk/client-dynamodb";
import { loadConfig } from "@hoist/core/config";
import { createLogger } from "@hoist/core/logger";
import { createTableInput } from "@hoist/core/store/table";
import { afterEach, describe, expect, it } from "vitest";
import { startDynamoDbLocal } from "./dynamodb-local.ts";
import { type Runtime, startRuntime } from "./runtime.ts";

/**
 * `npm start`'s DynamoDB Local listens on every interface with no auth. What
 * protects the data is the namespace: without -sharedDb each access key id has
 * its own database, and only this install knows its key id.
 */
let runtime: Runtime | undefined;
afterEach(async () => {
  await runtime?.stop();
  runtime = undefined;
});

const start = (dataDir: string) =>
  startRuntime(
    loadConfig({ PORT: "0", HOIST_DATA_DIR: dataDir, HOIST_LOG_LEVEL: "silent", HOIST_STATUS_SWEEP_SECONDS: "0" }),
    createLogger("silent"),
  );

/** The same port as another host on this machine would reach it: 127.0.0.2 hits the wildcard bind, not 127.0.0.1. */
const fromOutside = (endpoint: string, accessKeyId: string, secretAccessKey = "anything", region = "local") =>
  new DynamoDBClient({
    endpoint: endpoint.replace("127.0.0.1", "127.0.0.2"),
    region,
    credentials: { accessKeyId, secretAccessKey },
    maxAttempts: 1,
  });

const OUTSIDERS: [accessKeyId: string, secret: string, region: string][] = [
  ["hoist", "local", "local"], // what the runtime signed with until now
  ["hoist", "local", "us-east-1"],
  ["x", "y", "local"],
  ["AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "eu-west-1"],
  ["local", "local", "local"],
];

const keyIdOf = async (dataDir: string) => (await readFile(join(dataDir, "dynamodb", "access-key-id"), "utf8")).trim();

async function expectInvisible(endpoint: string, tableName: string) {
  for (const [accessKeyId, secret, region] of OUTSIDERS) {
    const client = fromOutside(endpoint, accessKeyId, secret, region);
    try {
      const { TableNames } = await client.send(new ListTablesCommand({}));
      expect(TableNames, `${accessKeyId}@${region}`).not.toContain(tableName);
      await expect(
        client.send(new GetItemCommand({ TableName: tableName, Key: { pk: { S: "x" }, sk: { S: "x" } } })),
      ).rejects.toMatchObject({ name: "ResourceNotFoundException" });
      await expect(client.send(new ScanCommand({ TableName: tableName }))).rejects.toMatchObject({
        name: "ResourceNotFoundException",
      });
    } finally {
      client.destroy();
    }
  }
}

describe("the embedded DynamoDB Local", () => {
  it("keeps Hoist's table in a namespace only the install's own key id opens", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "hoist-ddb-iso-"));
    runtime = await start(dataDir);
    const register = await fetch(`${runtime.url}/api/auth/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "owner", email: "owner@example.com", password: "correct horse battery staple" }),
    });
    expect(register.status).toBe(201);

    const keyId = await keyIdOf(dataDir);
    expect(keyId).toMatch(/^[a-z0-9]{32,}$/); // ≥ 128 bits
    expect(statSync(join(dataDir, "dynamodb", "access-key-id")).mode & 0o777).toBe(0o600);
    expect(existsSync(join(dataDir, "dynamodb", `${keyId}_local.db`))).toBe(true);

    await expectInvisible(runtime.dynamodbEndpoint, "hoist");

    // An outsider writing a table of the same name only fills its own namespace.
    const intruder = fromOutside(runtime.dynamodbEndpoint, "hoist", "local");
    await intruder.send(new CreateTableCommand(createTableInput("hoist")));
    await intruder.send(
      new PutItemCommand({
        TableName: "hoist",
        Item: { pk: { S: "USER#owner" }, sk: { S: "X" }, planted: { S: "1" } },
      }),
    );
    intruder.destroy();
    expect(await runtime.deps.store.get({ pk: "USER#owner", sk: "X" })).toBeUndefined();
    const login = await fetch(`${runtime.url}/api/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "owner", password: "correct horse battery staple" }),
    });
    expect(login.status).toBe(200);

    // The same port with the install's key id is Hoist's database: the table is there, and only there.
    const own = fromOutside(runtime.dynamodbEndpoint, keyId);
    expect((await own.send(new ListTablesCommand({}))).TableNames).toContain("hoist");
    own.destroy();

    // No browser page may script it: a preflight from any origin gets no Access-Control-Allow-Origin.
    const preflight = await fetch(runtime.dynamodbEndpoint, {
      method: "OPTIONS",
      headers: {
        Origin: "http://localhost:3000",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-amz-target,authorization",
      },
    });
    expect(preflight.headers.get("access-control-allow-origin")).toBeNull();

    // A restart reuses the key id, so the data stays reachable.
    await runtime.stop();
    runtime = await start(dataDir);
    expect(await keyIdOf(dataDir)).toBe(keyId);
    const again = await fetch(`${runtime.url}/api/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "owner", password: "correct horse battery staple" }),
    });
    expect(again.status).toBe(200);
  }, 60_000);

  it("moves a -sharedDb database (data directories of older Hoist) into the install's namespace", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "hoist-ddb-legacy-"));
    const legacy = await startDynamoDbLocal({ dataDir: join(dataDir, "dynamodb"), sharedDb: true });
    await legacy.client.send(new CreateTableCommand(createTableInput("hoist")));
    await legacy.client.send(
      new PutItemCommand({ TableName: "hoist", Item: { pk: { S: "LEGACY#1" }, sk: { S: "X" }, note: { S: "kept" } } }),
    );
    await legacy.stop();
    expect(existsSync(join(dataDir, "dynamodb", "shared-local-instance.db"))).toBe(true);

    runtime = await start(dataDir);
    expect(await runtime.deps.store.get({ pk: "LEGACY#1", sk: "X" })).toMatchObject({ note: "kept" });
    const keyId = await keyIdOf(dataDir);
    expect(existsSync(join(dataDir, "dynamodb", "shared-local-instance.db"))).toBe(false);
    expect(existsSync(join(dataDir, "dynamodb", `${keyId}_local.db`))).toBe(true);
    await expectInvisible(runtime.dynamodbEndpoint, "hoist");

    // A lost key file is taken back from the database file's name, not replaced by a new, empty namespace.
    await runtime.stop();
    await rm(join(dataDir, "dynamodb", "access-key-id"));
    runtime = await start(dataDir);
    expect(await keyIdOf(dataDir)).toBe(keyId);
    expect(await runtime.deps.store.get({ pk: "LEGACY#1", sk: "X" })).toMatchObject({ note: "kept" });
  }, 60_000);
});
