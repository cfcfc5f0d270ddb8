import type { TestProject } from "vitest/node";
import { startDynamoDbLocal } from "./packages/local/src/dynamodb-local.ts";

declare module "vitest" {
  export interface ProvidedContext {
    dynamoEndpoint: string;
  }
}

export default async function setup(project: TestProject) {
  const db = await startDynamoDbLocal();
  project.provide("dynamoEndpoint", db.endpoint);
  return () => db.stop();
}
