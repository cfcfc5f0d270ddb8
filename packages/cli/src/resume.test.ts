import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Harness, PASSWORD, startHarness, startProxy } from "./testing/harness.ts";
import { addServer, createAppSteps } from "./testing/steps.ts";

/**
 * `deploy --follow` through a TCP proxy whose connections are cut mid-deploy:
 * the CLI reconnects, resumes from the last seq it printed, and prints every
 * line once, in order.
 */
let h: Harness;
let proxy: Awaited<ReturnType<typeof startProxy>>;
beforeAll(async () => {
  h = await startHarness(inject("dynamoEndpoint"));
  proxy = await startProxy(h.runtime.url);
  await h.register("bea");
  const url = proxy.url;
  const appDir = join(h.ssh.cwd, "slow");
  mkdirSync(appDir);
  const steps = [
    ["login", "-u", "bea", "--password-stdin"],
    addServer(h),
    ["projects", "create", "p"],
    createAppSteps({
      name: "slow",
      project: "p",
      path: appDir,
      command: "for i in $(seq 1 40); do echo line $i; sleep 0.05; done",
    }),
  ];
  for (const args of steps) {
    const r = await h.cli(args, { url, input: `${PASSWORD}\n` });
    if (r.code !== 0) throw new Error(`hoist ${args.join(" ")}: ${r.stderr}`);
  }
}, 60_000);
afterAll(async () => {
  await proxy?.stop();
  await h?.stop();
});

describe("hoist deploy --follow", () => {
  it("resumes a dropped WebSocket with no gap and no duplicate, and exits 0", async () => {
    const child = h.spawnCli(["deploy", "slow", "--follow"], { url: proxy.url });
    child.stdin?.end();
    let stdout = "";
    let stderr = "";
    const cuts: number[] = [];
    child.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.stdout?.on("data", (d: Buffer) => {
      stdout += d.toString();
      // Cut every connection (WebSocket and HTTP) twice while lines are streaming.
      for (const at of [8, 25]) {
        if (!cuts.includes(at) && stdout.includes(`line ${at}\n`)) {
          cuts.push(at);
          proxy.cut();
        }
      }
    });
    const code = await new Promise<number | null>((ok) => child.on("close", ok));
    expect(stderr).toMatch(/reconnecting/);
    expect(cuts).toEqual([8, 25]);
    expect(stdout.trim().split("\n")).toEqual(Array.from({ length: 40 }, (_, i) => `line ${i + 1}`));
    expect(code).toBe(0);
  });

  it("exits 130 on Ctrl-C without a terminal, leaving the deployment running", async () => {
    const child = h.spawnCli(["deploy", "slow", "--follow"], { url: proxy.url });
    child.stdin?.end();
    let stdout = "";
    child.stdout?.on("data", (d: Buffer) => {
      stdout += d.toString();
      if (stdout.includes("line 2\n")) child.kill("SIGINT");
    });
    const code = await new Promise<number | null>((ok) => child.on("close", ok));
    expect(code).toBe(130);
    const rest = await h.cli(["logs", "slow", "-f"], { url: proxy.url });
    expect(rest.code).toBe(0);
    expect(rest.stdout.trim().split("\n")).toHaveLength(40);
  });
});
