import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Hono } from "hono";
import { HoistError, NotFoundError } from "../errors.ts";
import type { AppEnv } from "./env.ts";

/**
 * `GET /docs`: Swagger UI over `/openapi.json`, served from the installed
 * `swagger-ui-dist` package rather than a CDN, so it works offline and the
 * page can have a strict CSP: every script is a same-origin file (the
 * initializer too: no inline script, no 'unsafe-inline' for scripts).
 *
 * The assets are read from node_modules on first use. A Lambda bundle has no
 * node_modules: there `/docs` answers a 404 that says so (`/openapi.json`
 * still works), unless the function ships the package (SST `nodejs.install`).
 */

const JS = "text/javascript; charset=utf-8";
const CSS = "text/css; charset=utf-8";
/** The files the page loads from swagger-ui-dist, with their content types. */
const DIST_FILES: Record<string, string> = {
  "swagger-ui.css": CSS,
  "index.css": CSS,
  "swagger-ui-bundle.js": JS,
  "favicon-32x32.png": "image/png",
  "favicon-16x16.png": "image/png",
};

/** Ours: starts Swagger UI on the API's document (the online validator badge off: it would call validator.swagger.io). */
export const DOCS_INIT_SCRIPT = `"use strict";
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
});
`;

/** Same-origin files only; `data:` images are the icons swagger-ui.css embeds. */
export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");

const IMMUTABLE = "public, max-age=31536000, immutable";

export class DocsUnavailableError extends HoistError {
  override name = "DocsUnavailableError";
  constructor() {
    super(
      404,
      "docs_unavailable",
      "The interactive docs are not available in this deployment (the swagger-ui-dist package is not installed " +
        "next to it); the OpenAPI document is at /openapi.json",
    );
  }
}

interface Dist {
  dir: string;
  /** Part of every asset URL, so a new Swagger UI or initializer is a new URL and the assets can be cached for good. */
  id: string;
}

/** Where swagger-ui-dist is installed; throws when it is not (as in a Lambda bundle). */
export function installedDistDir(): string {
  return dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
}

function page(id: string): string {
  const asset = (file: string) => `/docs/assets/${id}/${file}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Hoist API</title>
<link rel="stylesheet" href="${asset("swagger-ui.css")}">
<link rel="stylesheet" href="${asset("index.css")}">
<link rel="icon" type="image/png" href="${asset("favicon-32x32.png")}" sizes="32x32">
<link rel="icon" type="image/png" href="${asset("favicon-16x16.png")}" sizes="16x16">
</head>
<body>
<div id="swagger-ui"></div>
<noscript>The docs need JavaScript; the OpenAPI document is at <a href="/openapi.json">/openapi.json</a>.</noscript>
<script src="${asset("swagger-ui-bundle.js")}"></script>
<script src="${asset("init.js")}"></script>
</body>
</html>
`;
}

/** The docs routes; `distDir` finds the package (tests inject a missing one). */
export function docsRoutes(distDir: () => string = installedDistDir) {
  let dist: Promise<Dist> | undefined;
  const files = new Map<string, Promise<Uint8Array<ArrayBuffer>>>();

  // Looked up and read once, on first use; a failure is not remembered, so installing the package needs no restart.
  const loadDist = () => {
    dist ??= (async () => {
      const dir = distDir();
      const { version } = JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as { version: string };
      const hash = createHash("sha256").update(DOCS_INIT_SCRIPT).digest("hex").slice(0, 8);
      return { dir, id: `${version}-${hash}` };
    })().catch(() => {
      dist = undefined;
      throw new DocsUnavailableError();
    });
    return dist;
  };
  const read = (dir: string, file: string) => {
    let content = files.get(file);
    if (!content) {
      // A view of the file's bytes, not a copy per request (the bundle is 1.7 MB).
      content = readFile(join(dir, file)).then(
        (b) => new Uint8Array(b.buffer as ArrayBuffer, b.byteOffset, b.byteLength),
      );
      content.catch(() => files.delete(file));
      files.set(file, content);
    }
    return content;
  };

  return new Hono<AppEnv>()
    .get("/docs", async (c) => {
      const { id } = await loadDist();
      return c.body(page(id), 200, {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": DOCS_CSP,
        "Cache-Control": "no-cache",
      });
    })
    .get("/docs/assets/:id/:file", async (c) => {
      const { id, file } = c.req.param();
      const { dir, id: current } = await loadDist();
      if (id !== current) throw new NotFoundError("Docs asset");
      if (file === "init.js")
        return c.body(DOCS_INIT_SCRIPT, 200, {
          "Content-Type": JS,
          "Cache-Control": IMMUTABLE,
        });
      const type = Object.hasOwn(DIST_FILES, file) ? DIST_FILES[file] : undefined;
      if (!type) throw new NotFoundError("Docs asset");
      return c.body(await read(dir, file), 200, { "Content-Type": type, "Cache-Control": IMMUTABLE });
    });
}
