import { createServer, connect as netConnect, type Socket } from "node:net";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { sshFailure } from "../testing/ssh-failure.ts";
import { startTestSshServer, type TestSshServer } from "../testing/ssh-server.ts";
import { type ExecOptions, Ssh2Executor, type Ssh2ExecutorOptions, type SshTarget } from "./ssh.ts";

const OPTS: ExecOptions = { timeoutMs: 10_000, connectTimeoutMs: 2000 };
let server: TestSshServer;
let relay: Relay;
const executors: Ssh2Executor[] = [];

beforeAll(async () => {
  // Like OpenSSH: a closed channel does not kill the command, only a signal request does.
  server = await startTestSshServer({ killOnClose: false });
});
afterAll(() => server?.stop());
beforeEach(async () => {
  relay = await startRelay(server);
});
afterEach(async () => {
  await Promise.all(executors.splice(0).map((ex) => ex.close()));
  await relay.stop();
});

/** A warm executor (closed after the test), whose TCP connections are counted by `connects`. */
function warm(opts: Ssh2ExecutorOptions = {}) {
  const connects: string[] = [];
  const executor = new Ssh2Executor({
    idleMs: 60_000,
    ...opts,
    connect: (address, port) => {
      connects.push(address);
      return netConnect({ host: address, port });
    },
  });
  executors.push(executor);
  return { executor, connects };
}

/** The test server, through the relay. */
function target(over: Partial<SshTarget> = {}): SshTarget {
  return {
    host: server.host,
    port: relay.port,
    username: server.username,
    privateKey: server.clientKey.private,
    hostKeyFingerprint: server.hostKeyFingerprint,
    ...over,
  };
}

describe("warm connections (idleMs > 0)", () => {
  it("two sequential execs share one TCP connection and one handshake, and both report the host key", async () => {
    const { executor, connects } = warm();
    const first = await executor.exec(target(), "echo one", OPTS);
    const second = await executor.exec(target(), "echo two; exit 4", OPTS);
    expect(first).toMatchObject({ exitCode: 0, stdoutTail: ["one"], hostKeyFingerprint: server.hostKeyFingerprint });
    expect(second).toMatchObject({ exitCode: 4, stdoutTail: ["two"], hostKeyFingerprint: server.hostKeyFingerprint });
    expect(second.durationMs).toBeGreaterThanOrEqual(0);
    expect({ connects: connects.length, accepted: relay.accepted(), open: server.openConnections() }).toEqual({
      connects: 1,
      accepted: 1,
      open: 1,
    });
  });

  it("5 concurrent first execs share one in-flight connect and one connection, each with its own output", async () => {
    const { executor, connects } = warm();
    const results = await Promise.all(
      [0, 1, 2, 3, 4].map((i) =>
        executor.exec(target(), `echo out-${i}; echo err-${i} >&2; sleep 0.2; exit ${i}`, OPTS),
      ),
    );
    expect(results.map((r) => [r.exitCode, r.stdoutTail, r.stderrTail])).toEqual(
      [0, 1, 2, 3, 4].map((i) => [i, [`out-${i}`], [`err-${i}`]]),
    );
    expect(connects).toHaveLength(1);
    expect(relay.accepted()).toBe(1);
  });

  it("above maxChannels commands on one target open another connection", async () => {
    const { executor } = warm({ maxChannels: 2 });
    const results = await Promise.all(
      [0, 1, 2, 3, 4].map((i) => executor.exec(target(), `sleep 0.3; exit ${i}`, OPTS)),
    );
    expect(results.map((r) => r.exitCode)).toEqual([0, 1, 2, 3, 4]);
    expect(relay.accepted()).toBe(3);
    // Later commands go on the open connections.
    await Promise.all([0, 1, 2, 3].map(() => executor.exec(target(), "true", OPTS)));
    expect(relay.accepted()).toBe(3);
  });

  it("closes a connection idle for idleMs (the server sees it close); the next exec opens a new one", async () => {
    const { executor } = warm({ idleMs: 300 });
    await executor.exec(target(), "true", OPTS);
    expect(server.openConnections()).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 150));
    await executor.exec(target(), "true", OPTS); // restarts the idle clock
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(server.openConnections()).toBe(1);
    await expect.poll(() => server.openConnections(), { timeout: 2000 }).toBe(0);
    expect((await executor.exec(target(), "echo again", OPTS)).stdoutTail).toEqual(["again"]);
    expect(relay.accepted()).toBe(2);
  });

  it("the server closing an idle connection: the next exec runs on a new one", async () => {
    const { executor } = warm();
    await executor.exec(target(), "true", OPTS);
    relay.closeAll();
    await expect.poll(() => server.openConnections()).toBe(0);
    expect((await executor.exec(target(), "echo fresh", OPTS)).stdoutTail).toEqual(["fresh"]);
    expect(relay.accepted()).toBe(2);
  });

  it("a connection gone dead while idle: no channel opens on it, the exec is retried once on a new one", async () => {
    const { executor } = warm();
    await executor.exec(target(), "true", OPTS);
    const before = server.commands.length;
    relay.blackholeAll(); // the client is not told: it finds out when it asks for a channel
    const res = await executor.exec(target(), "echo retried", OPTS);
    expect(res).toMatchObject({ exitCode: 0, stdoutTail: ["retried"], hostKeyFingerprint: server.hostKeyFingerprint });
    expect(relay.accepted()).toBe(2);
    expect(server.commands.slice(before)).toEqual(["echo retried"]);
  });

  it("a connection lost mid-command fails the command as before; the next exec connects afresh", async () => {
    const { executor } = warm();
    const running = executor.exec(target(), "echo started; sleep 30", {
      ...OPTS,
      onLine: (_s, line) => line === "started" && relay.closeAll(),
    });
    const err = await sshFailure(running);
    expect(err.kind).toBe("protocol");
    expect(err.message).toMatch(
      new RegExp(
        `^The connection to 127\\.0\\.0\\.1:${relay.port} (closed unexpectedly|was reset) \\(running the command\\)$`,
      ),
    );
    expect(err.hostKeyFingerprint).toBe(server.hostKeyFingerprint);
    expect((await executor.exec(target(), "echo ok", OPTS)).stdoutTail).toEqual(["ok"]);
    expect(relay.accepted()).toBe(2);
  });

  it("a changed pin or credential never rides on the open connection: a wrong pin still fails with host-key", async () => {
    const { executor } = warm();
    await executor.exec(target(), "true", OPTS);
    const pinned = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const before = server.commands.length;
    const err = await sshFailure(executor.exec(target({ hostKeyFingerprint: pinned }), "touch ran", OPTS));
    expect(err.kind).toBe("host-key");
    expect(err.message).toContain(`expected ${pinned}, got ${server.hostKeyFingerprint}`);
    expect(server.commands.length).toBe(before);
    expect(relay.accepted()).toBe(2);
    // The password instead of the key: a connection of its own.
    const password = target({ privateKey: undefined, password: server.password });
    expect((await executor.exec(password, "echo pw", OPTS)).stdoutTail).toEqual(["pw"]);
    expect(relay.accepted()).toBe(3);
    // The first one is still there for the original target.
    await executor.exec(target(), "true", OPTS);
    expect(relay.accepted()).toBe(3);
  });

  it("aborting one command kills only it; another on the same connection completes", async () => {
    const { executor } = warm({ killGraceMs: 500 });
    const controller = new AbortController();
    const signalsBefore = server.signals.length;
    const alreadyLive = server.liveCommands(); // a dropped connection leaves its command running, as with OpenSSH
    const victim = executor.exec(target(), "echo started; sleep 30", {
      ...OPTS,
      signal: controller.signal,
      onLine: (_s, line) => line === "started" && controller.abort(),
    });
    const survivor = executor.exec(target(), "sleep 1; echo survived", OPTS);
    const err = await sshFailure(victim);
    expect(err).toMatchObject({ kind: "aborted", message: "The command was cancelled and killed" });
    expect(server.signals.slice(signalsBefore)).toEqual(["TERM"]);
    expect(await survivor).toMatchObject({ exitCode: 0, stdoutTail: ["survived"] });
    expect(relay.accepted()).toBe(1);
    await expect
      .poll(() => server.liveCommands().filter((pid) => !alreadyLive.includes(pid)), { timeout: 2000 })
      .toEqual([]);
  });

  it("a command timeout on a shared connection kills only that command", async () => {
    const { executor } = warm();
    const slow = executor.exec(target(), "sleep 30", { ...OPTS, timeoutMs: 300 });
    const quick = executor.exec(target(), "sleep 0.6; echo fine", OPTS);
    expect((await sshFailure(slow)).kind).toBe("command-timeout");
    expect((await quick).stdoutTail).toEqual(["fine"]);
    expect(relay.accepted()).toBe(1);
  });

  it("close() closes every connection it keeps", async () => {
    const { executor } = warm();
    await Promise.all([
      executor.exec(target(), "true", OPTS),
      executor.exec(target({ port: server.port }), "true", OPTS),
    ]);
    expect(server.openConnections()).toBe(2);
    await executor.close();
    await expect.poll(() => server.openConnections(), { timeout: 500 }).toBe(0);
    // Still usable after, without keeping anything.
    expect((await executor.exec(target(), "echo late", OPTS)).stdoutTail).toEqual(["late"]);
    await expect.poll(() => server.openConnections(), { timeout: 500 }).toBe(0);
  });
});

describe("idleMs 0 (Lambda)", () => {
  it("concurrent execs share a connection, closed with the last command before the exec resolves", async () => {
    const { executor } = warm({ idleMs: 0 });
    const results = await Promise.all([1, 2, 3].map((i) => executor.exec(target(), `exit ${i}`, OPTS)));
    expect(results.map((r) => r.exitCode)).toEqual([1, 2, 3]);
    expect(relay.accepted()).toBe(1);
    await expect.poll(() => relay.open()).toBe(0);
    await executor.exec(target(), "true", OPTS);
    expect(relay.accepted()).toBe(2);
  });
});

interface Relay {
  port: number;
  /** Connections accepted so far. */
  accepted(): number;
  /** Connections still open. */
  open(): number;
  /** The server ends every connection, as sshd does to an idle client (ClientAliveInterval, restart). */
  closeAll(): void;
  /** Every connection goes dead without a word (a NAT forgot it): the client's next packet gets a reset. */
  blackholeAll(): void;
  stop(): Promise<void>;
}

/** A TCP relay in front of the test server, to count and drop connections as the server or the network would. */
async function startRelay(to: TestSshServer): Promise<Relay> {
  const pairs = new Set<{ client: Socket; upstream: Socket; dead: boolean }>();
  const sockets = new Set<Socket>();
  let accepted = 0;
  const relay = createServer((client) => {
    accepted++;
    const upstream = netConnect({ host: to.host, port: to.port });
    sockets.add(client).add(upstream);
    const pair = { client, upstream, dead: false };
    pairs.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    const drop = () => {
      pairs.delete(pair);
      upstream.destroy();
      if (!pair.dead) client.destroy();
    };
    client.on("error", drop).on("close", () => {
      pairs.delete(pair);
      upstream.destroy();
    });
    upstream.on("error", drop).on("close", drop);
  });
  await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
  const { port } = relay.address() as { port: number };
  return {
    port,
    accepted: () => accepted,
    open: () => pairs.size,
    closeAll() {
      for (const { client, upstream } of pairs) {
        upstream.destroy();
        client.end();
      }
    },
    blackholeAll() {
      for (const pair of pairs) {
        pair.dead = true;
        pair.client.unpipe(pair.upstream);
        pair.upstream.unpipe(pair.client);
        pair.upstream.destroy();
        pair.client.on("data", () => pair.client.resetAndDestroy()).resume();
      }
    },
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => relay.close(resolve));
    },
  };
}
