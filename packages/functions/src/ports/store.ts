import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { awsResource } from "@hoist/core/config";
import { DynamoStore } from "@hoist/core/store/dynamo-store";

export const dynamoStore = (cursorKey: Uint8Array | undefined) =>
  new DynamoStore(new DynamoDBClient({}), awsResource("HOIST_TABLE_NAME"), { cursorKey });
