import { readFile } from "node:fs/promises";
import { createHttpApp } from "@hoist/core/http/app";
import { servedOpenApiDocument } from "@hoist/core/http/openapi-document";
import { testDeps } from "@hoist/core/testing/deps";
import { beforeAll, describe, expect, it } from "vitest";
import { DOCUMENT_PATH, SCHEMA_PATH, schemaText } from "./codegen.ts";

const FIX = "the API changed: run `npm run openapi` and commit openapi.json and packages/client/src/schema.ts";

/** The document a fully wired app (real adapters, DynamoDB Local) serves at GET /openapi.json. */
let served: unknown;
beforeAll(async () => {
  const res = await createHttpApp(await testDeps()).request("/openapi.json");
  expect(res.status).toBe(200);
  served = await res.json();
});

describe("the committed OpenAPI document and client types", () => {
  it("are built from what the app serves: `npm run openapi` needs no backend and gets the same document", async () => {
    expect(await servedOpenApiDocument()).toEqual(served);
  });

  it("openapi.json is the served document", async () => {
    const committed: unknown = JSON.parse(await readFile(DOCUMENT_PATH, "utf8"));
    expect(committed, FIX).toEqual(served);
  });

  it("schema.ts is what openapi-typescript generates from it", async () => {
    const committed = await readFile(SCHEMA_PATH, "utf8");
    expect(committed, FIX).toBe(await schemaText(served));
  });
});
