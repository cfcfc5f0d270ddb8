import { stat } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestSshServer, type TestSshServer } from "../testing/ssh-server.ts";
import { type OutputStream, Ssh2Executor, type SshTarget } from "./ssh.ts";

let server: TestSshServer;
const executor = new Ssh2Executor({ idleMs: 60_000 });

beforeAll(async () => {
  server = await startTestSshServer();
});
afterAll(async () => {
  await executor.close();
  await server?.stop();
});

function target(): SshTarget {
  return {
    host: server.host,
    port: server.port,
    username: server.username,
    privateKey: server.clientKey.private,
    hostKeyFingerprint: server.hostKeyFingerprint,
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const sizeOf = async (file: string) => (await stat(join(server.cwd, file)).catch(() => ({ size: 0 }))).size;

describe("backpressure (ExecOptions.flow)", () => {
  it("pauses both streams while the consumer is full: its buffer stays bounded, the server waits, no line is lost", async () => {
    // Lines of 8 bytes (seven digits and a newline): 12 MB on stdout, far more than SSH windows and pipes hold.
    const OUT_LINES = 1_500_000;
    // stderr goes first and fits the SSH window (80 KB): with both streams at once, a stdout that ends while a paused
    // reader still owes stderr can stall the test server's channel (seen 1 run in 4 under load; issue 14 note).
    const ERR_LINES = 10_000;
    const FULL = 2000;
    // ssh2 hands the channel one SSH packet (at most 32 KiB) per chunk: 4096 lines, and the end of one cut before.
    const CHUNK_LINES = (32 * 1024) / 8 + 1;
    const buffer: [OutputStream, string][] = [];
    const received: Record<OutputStream, string[]> = { stdout: [], stderr: [] };
    let most = 0;
    let waits = 0;
    let holding = true;
    let wake: (() => void) | undefined;
    const flow = {
      full: () => buffer.length > FULL,
      drained: () => {
        waits++;
        return new Promise<void>((resolve) => {
          wake = resolve;
        });
      },
    };
    // A consumer slower than the server: a few thousand lines a millisecond, nothing at all while `holding`.
    const consumer = setInterval(() => {
      if (holding) return;
      for (const [stream, line] of buffer.splice(0, 3000)) received[stream].push(line);
      if (buffer.length <= FULL / 2) {
        wake?.();
        wake = undefined;
      }
    }, 1);
    const cancel = new AbortController();
    const running = executor.exec(
      target(),
      `seq -f %07.0f ${ERR_LINES} >&2; seq -f %07.0f ${OUT_LINES} | tee out.txt`,
      {
        timeoutMs: 60_000,
        connectTimeoutMs: 2000,
        signal: cancel.signal,
        flow,
        onLine: (stream, line) => {
          buffer.push([stream, line]);
          most = Math.max(most, buffer.length);
        },
      },
    );
    try {
      // While the consumer holds, SSH flow control stops the command: what it wrote stops growing, far from the end.
      await expect.poll(() => sizeOf("out.txt")).toBeGreaterThan(0);
      let held = -1;
      for (let size = await sizeOf("out.txt"); size !== held; size = await sizeOf("out.txt")) {
        held = size;
        await sleep(300);
      }
      expect(held).toBeLessThan(OUT_LINES * 8 * 0.75);
      expect(buffer.length).toBeGreaterThan(FULL);
      expect(buffer.length).toBeLessThanOrEqual(FULL + CHUNK_LINES);

      holding = false;
      const result = await running;
      for (const [stream, line] of buffer.splice(0)) received[stream].push(line);
      expect(result.exitCode).toBe(0);
      expect(most).toBeLessThanOrEqual(FULL + CHUNK_LINES);
      expect(waits).toBeGreaterThan(10);
      for (const [stream, count] of [
        ["stdout", OUT_LINES],
        ["stderr", ERR_LINES],
      ] as const) {
        const lines = received[stream];
        expect(lines).toHaveLength(count);
        const wrong = lines.findIndex((line, i) => line !== String(i + 1).padStart(7, "0"));
        expect({ stream, wrong }).toEqual({ stream, wrong: -1 });
      }
    } finally {
      clearInterval(consumer);
      cancel.abort();
      await running.catch(() => {});
    }
  });

  it("a consumer whose drained() fails stops the command, as a throwing onLine does", async () => {
    const failure = new Error("log store unavailable");
    const err = await executor
      .exec(target(), "seq 1 1000000; sleep 30", {
        timeoutMs: 10_000,
        connectTimeoutMs: 2000,
        onLine: () => {},
        flow: { full: () => true, drained: () => Promise.reject(failure) },
      })
      .catch((e: unknown) => e);
    expect(err).toBe(failure);
    await expect.poll(() => server.liveCommands(), { timeout: 2000 }).toEqual([]);
  });
});
