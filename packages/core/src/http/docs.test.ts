import { existsSync } from "node:fs";
import { Hono } from "hono";
import { chromium } from "playwright-core";
import { beforeAll, describe, expect, it } from "vitest";
import { testDeps } from "../testing/deps.ts";
import { createHttpApp, type HttpApp } from "./app.ts";
import { DOCS_CSP, docsRoutes } from "./docs.ts";
import type { AppEnv } from "./env.ts";
import { onError } from "./problem.ts";

/** Debian's Chromium (installed by .ci/run); the browser test is skipped without it. */
const CHROMIUM = "/usr/bin/chromium";

let app: HttpApp;
beforeAll(async () => {
  app = createHttpApp(await testDeps());
});

/** Collects the page's CSP violation reports (a string: the type checker here knows no DOM). */
const WATCH_CSP = `window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => window.cspViolations.push(e.violatedDirective + " " + e.blockedURI));`;
/** Whether an inline script added to the page runs. */
const INJECT_INLINE_SCRIPT = `(() => {
  const script = document.createElement("script");
  script.textContent = "window.inlineRan = true";
  document.body.append(script);
  return window.inlineRan === true;
})()`;

/** The `src` and `href` values of a page. */
const references = (html: string) => [...html.matchAll(/\s(?:src|href)="([^"]*)"/g)].map((m) => m[1] ?? "");

describe("/docs", () => {
  it("answers HTML with a strict CSP, no inline script and only same-origin references", async () => {
    const res = await app.request("/docs");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("content-security-policy")).toBe(DOCS_CSP);
    expect(DOCS_CSP).toContain("default-src 'none'");
    expect(DOCS_CSP).toContain("script-src 'self';");
    expect(DOCS_CSP).not.toContain("unsafe");
    const html = await res.text();
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/); // every script is a file
    expect(html).not.toMatch(/\sstyle=|<style/);
    const refs = references(html);
    expect(refs.length).toBeGreaterThanOrEqual(5);
    for (const ref of refs) expect(ref).toMatch(/^\/(?!\/)/);
  });

  it("serves the assets with their content types and long-lived cache headers; nothing else", async () => {
    const refs = references(await (await app.request("/docs")).text()).filter((r) => r.startsWith("/docs/assets/"));
    const types: Record<string, string> = {
      js: "text/javascript; charset=utf-8",
      css: "text/css; charset=utf-8",
      png: "image/png",
    };
    for (const ref of refs) {
      const res = await app.request(ref);
      expect(res.status, ref).toBe(200);
      expect(res.headers.get("content-type"), ref).toBe(types[ref.split(".").at(-1) ?? ""]);
      expect(res.headers.get("cache-control"), ref).toBe("public, max-age=31536000, immutable");
    }
    const bundle = refs.find((r) => r.endsWith("/swagger-ui-bundle.js")) ?? "";
    expect((await (await app.request(bundle)).arrayBuffer()).byteLength).toBeGreaterThan(500_000);
    const init = refs.find((r) => r.endsWith("/init.js")) ?? "";
    expect(await (await app.request(init)).text()).toContain('url: "/openapi.json"');
    const [, , , id] = bundle.split("/");
    expect(id).toMatch(/^5\.\d+\.\d+-[0-9a-f]{8}$/); // Swagger UI's version and the initializer's hash
    for (const path of [
      `/docs/assets/${id}/package.json`,
      `/docs/assets/${id}/..%2Fpackage.json`,
      `/docs/assets/${id}/swagger-ui-bundle.js.map`,
      "/docs/assets/4.0.0-00000000/swagger-ui-bundle.js",
    ]) {
      const res = await app.request(path);
      expect(res.status, path).toBe(404);
      expect(res.headers.get("content-type"), path).toBe("application/problem+json");
    }
  });

  it("without swagger-ui-dist (a Lambda bundle) answers a 404 that says where the document is", async () => {
    const missing = () => {
      throw new Error("Cannot find module 'swagger-ui-dist/package.json'");
    };
    const bare = new Hono<AppEnv>().route("/", docsRoutes(missing)).onError(onError);
    const res = await bare.request("/docs");
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({
      type: "https://hoist.dev/problems/docs_unavailable",
      detail: expect.stringContaining("the OpenAPI document is at /openapi.json"),
    });
  });

  it.skipIf(!existsSync(CHROMIUM))(
    "renders the operations in Chromium with no network beyond Hoist and no CSP violation",
    async () => {
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
      });
      try {
        const page = await browser.newPage();
        const errors: string[] = [];
        const elsewhere: string[] = [];
        page.on("pageerror", (err) => errors.push(err.message));
        page.on("console", (msg) => msg.type() === "error" && errors.push(msg.text()));
        // Offline: the app answers localhost through app.request(); any other host is refused and noted.
        await page.route("**/*", async (route) => {
          const req = route.request();
          const url = new URL(req.url());
          if (url.host !== "localhost") {
            elsewhere.push(req.url());
            return route.abort("internetdisconnected");
          }
          const res = await app.request(url.pathname + url.search, { method: req.method(), headers: req.headers() });
          return route.fulfill({
            status: res.status,
            headers: Object.fromEntries(res.headers),
            body: Buffer.from(await res.arrayBuffer()),
          });
        });
        await page.addInitScript({ content: WATCH_CSP });
        await page.goto("http://localhost/docs");
        const health = page.locator(".opblock", { has: page.getByText("/health", { exact: true }) });
        await health.waitFor({ timeout: 15_000 });
        expect(await page.locator(".opblock").count()).toBeGreaterThan(20);
        // Open an operation (markdown, schemas, highlighted examples) and call it: connect-src 'self' suffices.
        await health.locator(".opblock-summary").click();
        await health.locator(".try-out__btn").click();
        await health.locator(".execute").click();
        await health.locator(".live-responses-table .response-col_status", { hasText: "200" }).waitFor();
        const violations = () => page.evaluate("window.cspViolations") as Promise<string[]>;
        expect(await violations()).toEqual([]);
        // The policy is really in force: an injected inline script is refused, and reported.
        expect(await page.evaluate(INJECT_INLINE_SCRIPT)).toBe(false);
        await expect.poll(violations).toEqual([expect.stringMatching(/^script-src/)]);
        expect(elsewhere).toEqual([]);
        expect(errors.filter((e) => !e.includes("Content Security Policy"))).toEqual([]);
      } finally {
        await browser.close();
      }
    },
    60_000,
  );
});
