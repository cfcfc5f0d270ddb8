import { appendFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fetchApi } from "@hoist/core/testing/fetch-api";
import { composeLine, writeStandInDocker } from "@hoist/core/testing/operate";
import { startTestSshServer, type TestSshServer } from "@hoist/core/testing/ssh-server";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { Runtime } from "./runtime.ts";
import { startTestRuntime } from "./testing/test-runtime.ts";

/** Debian's Chromium (installed by .ci/run); playwright-core drives it and downloads no browser of its own. */
const CHROMIUM = "/usr/bin/chromium";
const PASSWORD = "correct horse battery staple";
const LINES = 20;

let runtime: Runtime;
let ssh: TestSshServer;
let browser: Browser;
let page: Page;
let appId: string;
let appDir: string;
/** Page errors and console errors (CSP violations among them): there should be none. */
const pageErrors: string[] = [];
/** Every request the page makes, as `METHOD path`. */
const requests: string[] = [];

const api = fetchApi(() => runtime.url);

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: the web page test needs Debian's Chromium ` +
        "(apt-get install -y --no-install-recommends chromium; .ci/run installs it)",
    );
  }
  runtime = await startTestRuntime({
    name: "web",
    dataDir: await mkdtemp(join(tmpdir(), "hoist-web-")),
    dynamoEndpoint: inject("dynamoEndpoint"),
  });
  const bin = await mkdtemp(join(tmpdir(), "hoist-web-bin-"));
  await writeStandInDocker(bin);
  ssh = await startTestSshServer({ pathPrefix: [bin] });
  const user = await api<{ token: string }>("POST", "/api/auth/register", undefined, {
    username: "wendy",
    email: "wendy@example.com",
    password: PASSWORD,
  });
  const token = user.body.token;
  const server = await api("POST", "/api/servers", token, {
    name: "box",
    address: ssh.host,
    sshPort: ssh.port,
    sshUser: ssh.username,
    privateKey: ssh.clientKey.private,
  });
  const project = await api("POST", "/api/projects", token, { name: "p" });
  appDir = join(ssh.cwd, "app");
  mkdirSync(appDir);
  writeFileSync(join(appDir, "compose.log"), `${composeLine("web-1", Date.now() - 60_000, "started earlier")}\n`);
  const app = await api("POST", "/api/apps", token, {
    name: "weblog",
    projectId: project.body.id,
    serverId: server.body.id,
    cdPath: appDir,
    commands: {
      start: "echo up",
      stop: "echo down",
      // Markup in a line must show as text; numbered lines come slowly enough to watch them arrive.
      deploy: `echo '<b id="injected">not bold</b>'; i=1; while [ $i -le ${LINES} ]; do echo "line $i"; i=$((i+1)); sleep 0.15; done`,
    },
  });
  expect(app).toMatchObject({ status: 201 });
  appId = app.body.id as string;

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-quic",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  // A phone-sized window: the page must be usable there.
  page = await browser.newPage({ viewport: { width: 390, height: 844 } });
  page.setDefaultTimeout(10_000);
  page.on("pageerror", (err) => pageErrors.push(err.message));
  page.on("console", (msg) => {
    // "Failed to load resource" is Chrome noting an error status, as the wrong password's 401 is meant to be.
    if (msg.type() === "error" && !msg.text().startsWith("Failed to load resource")) pageErrors.push(msg.text());
  });
  page.on("request", (req) => requests.push(`${req.method()} ${new URL(req.url()).pathname}`));
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await ssh?.stop();
  await runtime?.stop();
});

const logLines = () => page.locator("#log > div").allTextContents();
const exactly = (text: string) => new RegExp(`^${text}$`);
/** Waits until the element shows exactly `text`. */
const shows = (selector: string, text: string, timeout?: number) =>
  page.locator(selector, { hasText: exactly(text) }).waitFor({ timeout });

describe("live log page", () => {
  it("is served at / as HTML with a strict Content-Security-Policy", async () => {
    const res = await fetch(`${runtime.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const csp = res.headers.get("content-security-policy") ?? "";
    const directives = new Map(csp.split(/;\s*/).map((d) => [d.split(" ")[0], d.split(" ").slice(1)]));
    expect(directives.get("default-src")).toEqual(["'self'"]);
    expect(directives.get("script-src")).toEqual(["'self'", expect.stringMatching(/^'sha256-[A-Za-z0-9+/]+=*'$/)]);
    expect(directives.get("connect-src")).toEqual(["'self'", "ws:", "wss:"]);
    expect(csp).not.toContain("unsafe-eval");
    expect(directives.get("frame-ancestors")).toEqual(["'none'"]);
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    const html = await res.text();
    expect(html).toContain("<script>");
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+stylesheet|https?:\/\//);
  });

  it("signs in, deploys, and shows the deployment's lines as the target prints them", async () => {
    await page.goto(`${runtime.url}/`);
    await page.getByLabel("Username or email").fill("wendy");
    await page.getByLabel("Password").fill("wrong password, surely");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("#login-error").filter({ hasText: /\S/ }).waitFor();

    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator(`#apps button[data-id="${appId}"]`).click();
    await shows("#app-status", "stopped");

    await page.getByRole("button", { name: "Deploy" }).click();
    const entry = page.locator("#deployments button.pick").first();
    await entry.waitFor();
    const deploymentId = (await entry.getAttribute("data-id")) as string;
    expect(deploymentId).toMatch(/^dep_/);
    await entry.click();
    await page.locator("#log-title", { hasText: deploymentId }).waitFor();

    // Progressive: line 5 is on the page while the target has not printed line 20 yet.
    await page.locator("#log > div", { hasText: exactly("line 5") }).waitFor();
    expect(await logLines()).not.toContain(`line ${LINES}`);

    await page.locator("#log > div", { hasText: exactly(`line ${LINES}`) }).waitFor({ timeout: 15_000 });
    await shows("#log-status", "succeeded", 15_000);
    const lines = await logLines();
    expect(lines.filter((l) => /^line \d+$/.test(l))).toEqual(Array.from({ length: LINES }, (_, i) => `line ${i + 1}`));
    const seqs = (
      await page.locator("#log > div").evaluateAll((els) => els.map((e) => e.getAttribute("data-seq")))
    ).map(Number);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    // The markup arrived as text, not as an element.
    expect(lines).toContain('<b id="injected">not bold</b>');
    expect(await page.locator("#injected").count()).toBe(0);
    await shows(`#deployments button[data-id="${deploymentId}"] .badge`, "succeeded");
    // The log came over the WebSocket: the page never polled for it.
    expect(requests.filter((r) => r.includes("/logs"))).toEqual([]);
  });

  it("starts and stops the app, the badge following its status live", async () => {
    requests.length = 0;
    await page.getByRole("button", { name: "Start" }).click();
    await shows("#app-status", "running");
    await shows(`#apps button[data-id="${appId}"] .badge`, "running");
    await page.getByRole("button", { name: "Stop" }).click();
    await shows("#app-status", "stopped");
    // Only the two POSTs: "running" and "stopped" arrived over the WebSocket (the usage panel refreshes on them).
    expect(requests.filter((r) => r.includes("/api/") && !r.startsWith("GET /api/usage"))).toEqual([
      `POST /api/apps/${appId}/start`,
      `POST /api/apps/${appId}/stop`,
    ]);
    expect(pageErrors).toEqual([]);
  });

  it("shows the app's container logs: the last lines, then new ones as they come, each once", async () => {
    requests.length = 0;
    await page.getByRole("button", { name: "Container logs" }).click();
    await page.locator("#log-title", { hasText: "Container logs of weblog" }).waitFor();
    await page.locator("#log > div", { hasText: exactly("started earlier") }).waitFor();
    // Written after the subscribe: the tail follows from then on, so it arrives live (as text, like any line).
    appendFileSync(join(appDir, "compose.log"), `${composeLine("web-1", Date.now(), "<i>now</i> live")}\n`);
    await page.locator("#log > div", { hasText: exactly("<i>now</i> live") }).waitFor();
    expect(await logLines()).toEqual(["started earlier", "<i>now</i> live"]);
    expect(await page.locator("#log > div").first().getAttribute("data-service")).toBe("web-1");
    expect(requests.filter((r) => r.includes("/api/"))).toEqual([`GET /api/apps/${appId}/logs`]);
    expect(pageErrors).toEqual([]);
  });

  it("shows this month's use against the plan", async () => {
    await shows("#usage-month", new Date().toISOString().slice(0, 7));
    await page.locator("#usage dt", { hasText: exactly("App minutes") }).waitFor();
    // The deploy above counted: one deployment (the runtime runs an unlimited plan, so no "/ limit").
    await page.reload();
    await page.getByLabel("Username or email").fill("wendy");
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    const row = (name: string) =>
      page.locator("#usage dt", { hasText: exactly(name) }).locator("xpath=following-sibling::dd[1]");
    await expect.poll(() => row("Deployments").textContent()).toBe("1");
    expect(Number(await row("App minutes").textContent())).toBeGreaterThanOrEqual(1);
    expect(pageErrors).toEqual([]);
  });
});
