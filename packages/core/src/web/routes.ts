import { createHash } from "node:crypto";
import { Hono } from "hono";
import type { AppEnv } from "../http/env.ts";
import { PAGE_HTML, PAGE_SCRIPT, PAGE_STYLE } from "./page.ts";

const sha256 = (text: string) => `'sha256-${createHash("sha256").update(text, "utf8").digest("base64")}'`;

/**
 * The page may run its own inline script and style (allowed by hash, so the
 * header is static), talk to this origin and its WebSocket, and nothing else;
 * Trusted Types make any HTML-string sink (innerHTML and friends) throw.
 */
export const PAGE_CSP = [
  "default-src 'self'",
  `script-src 'self' ${sha256(PAGE_SCRIPT)}`,
  `style-src 'self' ${sha256(PAGE_STYLE)}`,
  "connect-src 'self' ws: wss:",
  "img-src 'self' data:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join("; ");

/** On AWS the WebSocket API has its own host: the page learns it from a meta tag. */
function withWsUrl(html: string, wsUrl: string | undefined): string {
  if (!wsUrl) return html;
  const escaped = wsUrl.replace(/[&"<>]/g, (ch) => `&#${ch.charCodeAt(0)};`);
  return html.replace("<head>", `<head>\n<meta name="hoist-ws-url" content="${escaped}">`);
}

/**
 * `GET /`: the live log page (web/page.ts). The global `secureHeaders()` adds
 * its headers after this handler but sets no Content-Security-Policy, so this one stands.
 */
export const webRoutes = new Hono<AppEnv>().get("/", (c) =>
  c.body(withWsUrl(PAGE_HTML, c.var.deps.config.publicWsUrl), 200, {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": PAGE_CSP,
    "Cache-Control": "no-cache",
  }),
);
