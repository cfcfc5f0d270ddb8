import { randomBytes } from "node:crypto";
import { CreateTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { inject } from "vitest";
import { DynamoStore } from "../store/dynamo-store.ts";
import { createTableInput } from "../store/table.ts";

/** A fresh table on the test run's DynamoDB Local (started once in vitest.global-setup.ts). */
export async function testTable(
  prefix = "t",
): Promise<{ client: DynamoDBClient; tableName: string; store: DynamoStore }> {
  const client = new DynamoDBClient({
    endpoint: inject("dynamoEndpoint"),
    region: "local",
    credentials: { accessKeyId: "hoist", secretAccessKey: "local" },
  });
  const tableName = `${prefix}_${randomBytes(6).toString("hex")}`;
  await client.send(new CreateTableCommand(createTableInput(tableName)));
  return { client, tableName, store: new DynamoStore(client, tableName) };
}
