import { fileURLToPath } from "node:url";
import openapiTS, { astToString, type OpenAPI3 } from "openapi-typescript";

/**
 * Build-time only (scripts/openapi.ts and the drift test; index.ts never
 * imports it): where the committed OpenAPI document and the generated types
 * live, and how both are produced from the served document.
 */

/** The committed document, at the repository root. */
export const DOCUMENT_PATH = fileURLToPath(new URL("../../../openapi.json", import.meta.url));
/** The generated types (excluded from Biome in biome.json: the drift test compares them byte for byte). */
export const SCHEMA_PATH = fileURLToPath(new URL("./schema.ts", import.meta.url));

const HEADER = `/**
 * Generated from openapi.json by openapi-typescript: do not edit by hand.
 * Regenerate both with \`npm run openapi\` (scripts/openapi.ts); packages/client/src/drift.test.ts
 * fails while either differs from what GET /openapi.json serves.
 */

`;

/** The document as committed: two-space JSON and a final newline. */
export const documentText = (doc: unknown): string => `${JSON.stringify(doc, null, 2)}\n`;

/** The contents of schema.ts for `doc`. */
export async function schemaText(doc: unknown): Promise<string> {
  const ast = await openapiTS(doc as OpenAPI3, { silent: true });
  return HEADER + astToString(ast);
}
