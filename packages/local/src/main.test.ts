import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "../../..");

/**
 * `npm start` as a newcomer runs it: a real process under Node's own ESM
 * loader (not vitest's), started directly and through npm itself (whose
 * SIGTERM must reach the runtime: npm signals only its `sh -c`, so the
 * script `exec`s).
 */
const LAUNCHERS: [string, string, string[]][] = [
  ["node --import tsx", process.execPath, ["--import", "tsx", "packages/local/src/main.ts"]],
  ["npm start", "npm", ["start", "--silent"]],
];

describe("npm start", () => {
  it.each(LAUNCHERS)(
    "comes up ready on a fresh data directory, prints the URLs, and leaves nothing behind on SIGTERM (%s)",
    async (_name, command, args) => {
      const dataDir = await mkdtemp(join(tmpdir(), "hoist-main-"));
      const child: ChildProcess = spawn(command, args, {
        cwd: root,
        // Port 0: the system picks a free one (no race with other tests); the banner says which.
        env: { ...process.env, PORT: "0", HOIST_DATA_DIR: dataDir, NODE_ENV: "production" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let output = "";
      child.stdout?.on("data", (d) => {
        output += d;
      });
      child.stderr?.on("data", (d) => {
        output += d;
      });
      const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));

      const deadline = Date.now() + 30_000;
      let port: string | undefined;
      let ready = false;
      while (!ready && Date.now() < deadline && child.exitCode === null) {
        port ??= /Health\s+http:\/\/127\.0\.0\.1:(\d+)\/health\/ready/.exec(output)?.[1];
        ready =
          port !== undefined &&
          (await fetch(`http://127.0.0.1:${port}/health/ready`)
            .then((r) => r.ok)
            .catch(() => false));
        if (!ready) await new Promise((r) => setTimeout(r, 100));
      }
      expect(ready, output).toBe(true);
      expect(output).toContain(`http://127.0.0.1:${port}/docs`);
      expect(output).toContain("first account registered becomes the admin");
      expect(output).not.toMatch(/Warning|Error|at .*\.ts:\d+/);

      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      const left = (() => {
        try {
          return execFileSync("pgrep", ["-f", dataDir]).toString().trim();
        } catch {
          return "";
        }
      })();
      expect(left).toBe("");
      expect(await fetch(`http://127.0.0.1:${port}/health/live`).catch(() => "closed")).toBe("closed");
    },
  );
});
