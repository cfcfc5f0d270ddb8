import { writeFile } from "node:fs/promises";
import { relative } from "node:path";
import { DOCUMENT_PATH, documentText, SCHEMA_PATH, schemaText } from "@hoist/client/codegen";
import { servedOpenApiDocument } from "@hoist/core/http/openapi-document";

/**
 * `npm run openapi`: writes the document GET /openapi.json serves to
 * openapi.json and its TypeScript types to packages/client/src/schema.ts.
 * Run it after changing a route; both files are committed.
 */
const doc = await servedOpenApiDocument();
await writeFile(DOCUMENT_PATH, documentText(doc));
await writeFile(SCHEMA_PATH, await schemaText(doc));
for (const path of [DOCUMENT_PATH, SCHEMA_PATH]) console.log(`wrote ${relative(process.cwd(), path)}`);
