import type { LookupAddress } from "node:dns";
import { lookup as dnsLookup } from "node:dns/promises";
import { mkdir, readdir, readFile, stat } from "node:fs/promises";
import { createServer, isIP, connect as netConnect } from "node:net";
import { join } from "node:path";
import ssh2 from "ssh2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testClient } from "../testing/http.ts";
import { sshFailure } from "../testing/ssh-failure.ts";
import { ed25519KeyPair, startTestSshServer, type TestSshServer } from "../testing/ssh-server.ts";
import { serverKey } from "./entity.ts";
import type { NetworkPolicy } from "./networks.ts";
import { buildScript, CWD_MISSING_EXIT, CWD_MISSING_MARKER, writeFileScript } from "./shell.ts";
import { type ExecOptions, LINE_TRUNCATED_MARKER, Ssh2Executor, type SshTarget } from "./ssh.ts";

const executor = new Ssh2Executor();
const OPTS: ExecOptions = { timeoutMs: 5000, connectTimeoutMs: 2000 };
let server: TestSshServer;

beforeAll(async () => {
  // Like OpenSSH: a closed channel does not kill the command, only a signal request does.
  server = await startTestSshServer({ killOnClose: false });
});
afterAll(() => server?.stop());

function target(over: Partial<SshTarget> = {}, srv: TestSshServer = server): SshTarget {
  return {
    host: srv.host,
    port: srv.port,
    username: srv.username,
    privateKey: srv.clientKey.private,
    hostKeyFingerprint: srv.hostKeyFingerprint,
    ...over,
  };
}

/** Runs and collects the lines onLine saw. */
async function run(script: string, opts: Partial<ExecOptions> = {}, t: SshTarget = target(), ex = executor) {
  const lines: [string, string][] = [];
  const result = await ex.exec(t, script, { ...OPTS, onLine: (s, l) => lines.push([s, l]), ...opts });
  return { ...result, lines };
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const { port } = srv.address() as { port: number };
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

describe("Ssh2Executor against a real SSH server", () => {
  it("runs a command: stdout, stderr, exit code, host key; and closes the connection", async () => {
    const res = await run("echo out; echo err >&2; echo out2; exit 3");
    expect(res).toMatchObject({
      exitCode: 3,
      signal: null,
      stdoutTail: ["out", "out2"],
      stderrTail: ["err"],
      hostKeyFingerprint: server.hostKeyFingerprint,
    });
    // Order holds within a stream; across stdout and stderr (two pipes) it cannot be promised.
    expect(res.lines.filter(([s]) => s === "stdout")).toEqual([
      ["stdout", "out"],
      ["stdout", "out2"],
    ]);
    expect(res.lines.filter(([s]) => s === "stderr")).toEqual([["stderr", "err"]]);
    expect(res.durationMs).toBeGreaterThan(0);
    await expect.poll(() => server.openConnections()).toBe(0);
  });

  it("streams 5000 lines fast, in order, none lost, and flushes a partial last line", async () => {
    const res = await run(`i=1; while [ $i -le 5000 ]; do echo "line $i"; i=$((i+1)); done; printf 'partial'`, {
      tailLines: 3,
    });
    const stdout = res.lines.filter(([s]) => s === "stdout").map(([, l]) => l);
    expect(stdout).toHaveLength(5001);
    expect(stdout.slice(0, 5000)).toEqual(Array.from({ length: 5000 }, (_, i) => `line ${i + 1}`));
    expect(stdout[5000]).toBe("partial");
    expect(res.stdoutTail).toEqual(["line 4999", "line 5000", "partial"]);
  });

  it("handles CRLF, multi-byte characters and over-long lines", async () => {
    const res = await run(`printf 'a\\r\\nb\\r\\n☃🚀\\n'; head -c 20000 /dev/zero | tr '\\0' x; echo; echo after`);
    const stdout = res.lines.map(([, l]) => l);
    expect(stdout.slice(0, 3)).toEqual(["a", "b", "☃🚀"]);
    expect(stdout[3]).toBe(`${"x".repeat(16_384)}${LINE_TRUNCATED_MARKER}`);
    expect(stdout[4]).toBe("after");
  });

  it("delivers stdin: writes .env with mode 0600 through writeFileScript", async () => {
    const dir = join(server.cwd, "stdin app");
    await mkdir(dir);
    const content = "A='x'\nB=\"$(touch pwned)\"\nC=ünï\n";
    const res = await run(writeFileScript(".env", { cwd: dir }), { stdin: content });
    expect(res.exitCode).toBe(0);
    expect(await readFile(join(dir, ".env"), "utf8")).toBe(content);
    expect((await stat(join(dir, ".env"))).mode & 0o777).toBe(0o600);
    const back = await run(buildScript({ cwd: dir, command: "cat .env" }));
    expect(back.stdoutTail).toEqual(["A='x'", 'B="$(touch pwned)"', "C=ünï"]);
  });

  it("passes cwd and env with shell metacharacters literally, injecting nothing", async () => {
    const cwd = join(server.cwd, "weird $(touch pwned) `touch pwned` ; 'q' \"d\"\nnewline");
    await mkdir(cwd);
    const env = {
      DOLLAR: "$(touch pwned)",
      TICKS: "`touch pwned`",
      SEMI: "; touch pwned; echo",
      QUOTES: `it's "quoted"`,
      MULTI: "line 1\nline 2",
      EMPTY: "",
    };
    const res = await run(
      buildScript({
        cwd,
        env,
        command: `printf '%s' "$PWD" > ../pwd.out; for n in DOLLAR TICKS SEMI QUOTES MULTI EMPTY; do eval "printf '%s\\n' \\"[\\$$n]\\""; done`,
      }),
    );
    expect(res.exitCode).toBe(0);
    expect(await readFile(join(server.cwd, "pwd.out"), "utf8")).toBe(cwd);
    expect(res.stdoutTail).toEqual([
      "[$(touch pwned)]",
      "[`touch pwned`]",
      "[; touch pwned; echo]",
      `[it's "quoted"]`,
      "[line 1",
      "line 2]",
      "[]",
    ]);
    const files = (await readdir(server.cwd, { recursive: true })).map(String);
    expect(files.filter((f) => f.endsWith("pwned"))).toEqual([]);
  });

  it("reports a missing cwd with a clear marker and exit code", async () => {
    const res = await run(buildScript({ cwd: "/no/such/dir", command: "echo ran" }));
    expect(res.exitCode).toBe(CWD_MISSING_EXIT);
    expect(res.stderrTail.join("\n")).toContain(`${CWD_MISSING_MARKER}: /no/such/dir`);
    expect(res.stdoutTail).toEqual([]);
  });

  describe("host key", () => {
    it("on first use accepts the key and reports its fingerprint; the pinned one is accepted after", async () => {
      const first = await run("true", {}, target({ hostKeyFingerprint: null }));
      expect(first.hostKeyFingerprint).toBe(server.hostKeyFingerprint);
      expect(first.hostKeyFingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
      const pinned = await run("true", {}, target({ hostKeyFingerprint: first.hostKeyFingerprint }));
      expect(pinned.exitCode).toBe(0);
    });

    it("refuses a key that does not match the pin, before authenticating or running anything", async () => {
      const pinned = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
      const before = server.commands.length;
      const err = await sshFailure(run("touch ran", {}, target({ hostKeyFingerprint: pinned })));
      expect(err.kind).toBe("host-key");
      expect(err.message).toContain(`expected ${pinned}, got ${server.hostKeyFingerprint}`);
      expect(err.hostKeyFingerprint).toBe(server.hostKeyFingerprint);
      expect(server.commands.length).toBe(before);
    });
  });

  describe("authentication", () => {
    it("works with the password", async () => {
      const res = await run("echo ok", {}, target({ privateKey: undefined, password: server.password }));
      expect(res.stdoutTail).toEqual(["ok"]);
    });

    it("fails clearly with a key the server does not accept", async () => {
      const other = ed25519KeyPair();
      const err = await sshFailure(run("true", {}, target({ privateKey: other.private })));
      expect(err.kind).toBe("auth");
      expect(err.message).toBe(
        `Authentication failed for user deploy on 127.0.0.1:${server.port} (tried: private key)`,
      );
    });

    it("fails clearly with a wrong password, never showing it", async () => {
      const password = "hunter2-wrong";
      const err = await sshFailure(run("true", {}, target({ privateKey: undefined, password })));
      expect(err.kind).toBe("auth");
      expect(err.message).toContain("Authentication failed for user deploy");
      expect(err.message).not.toContain(password);
    });

    it("uses an encrypted key with its passphrase; a wrong or missing passphrase is an auth error", async () => {
      const key = ssh2.utils.generateKeyPairSync("ed25519", {
        passphrase: "open sesame",
        cipher: "aes256-ctr",
        rounds: 4,
      });
      const srv = await startTestSshServer({ authorizedKeys: [key.public] });
      try {
        const t = (passphrase?: string) => target({ privateKey: key.private, passphrase }, srv);
        expect((await run("echo ok", {}, t("open sesame"))).stdoutTail).toEqual(["ok"]);
        const wrong = await sshFailure(run("true", {}, t("wrong")));
        expect(wrong).toMatchObject({ kind: "auth", message: "Wrong passphrase for the private key" });
        const missing = await sshFailure(run("true", {}, t()));
        expect(missing).toMatchObject({
          kind: "auth",
          message: "The private key is encrypted: a passphrase is needed",
        });
        expect(srv.commands).toEqual(["echo ok"]);
      } finally {
        await srv.stop();
      }
    });
  });

  describe("connection failures", () => {
    it("closed port → refused", async () => {
      const port = await freePort();
      const err = await sshFailure(run("true", {}, target({ port })));
      expect(err).toMatchObject({ kind: "refused", message: `Connection refused by 127.0.0.1:${port}` });
    });

    it("unknown host → dns", async () => {
      const err = await sshFailure(run("true", {}, target({ host: "no-such-host.invalid" })));
      expect(err).toMatchObject({ kind: "dns", message: "DNS lookup failed for no-such-host.invalid" });
    });

    it("a server that never completes the handshake → timeout within connectTimeoutMs", async () => {
      const stalled = await startTestSshServer({ stallHandshake: true });
      try {
        const started = Date.now();
        const err = await sshFailure(run("true", { connectTimeoutMs: 500 }, target({}, stalled)));
        expect(Date.now() - started).toBeLessThan(1000);
        expect(err.kind).toBe("timeout");
        expect(err.message).toBe(
          `Timed out connecting to 127.0.0.1:${stalled.port} after 500 ms (waiting for the SSH handshake)`,
        );
        await expect.poll(() => stalled.openConnections()).toBe(0);
      } finally {
        await stalled.stop();
      }
    });

    it("slow authentication counts against connectTimeoutMs", async () => {
      const slow = await startTestSshServer({ authDelayMs: 2000 });
      try {
        const err = await sshFailure(run("true", { connectTimeoutMs: 500 }, target({}, slow)));
        expect(err.kind).toBe("timeout");
        expect(err.message).toContain("waiting for authentication");
      } finally {
        await slow.stop();
      }
    });
  });

  describe("stopping a command", () => {
    it("kills a command that outlives timeoutMs (TERM) and says so", async () => {
      const signalsBefore = server.signals.length;
      const started = Date.now();
      const err = await sshFailure(run("echo started; sleep 30", { timeoutMs: 500 }));
      expect(err).toMatchObject({ kind: "command-timeout", message: "Command timed out after 500 ms and was killed" });
      expect(Date.now() - started).toBeLessThan(3000);
      expect(server.signals.slice(signalsBefore)).toEqual(["TERM"]);
      await expect.poll(() => server.liveCommands(), { timeout: 2000 }).toEqual([]);
      await expect.poll(() => server.openConnections()).toBe(0);
    });

    it("kills the command when the AbortSignal fires", async () => {
      const controller = new AbortController();
      const promise = run("echo started; sleep 30", {
        signal: controller.signal,
        onLine: (_s, line) => line === "started" && controller.abort(),
      });
      const err = await sshFailure(promise);
      expect(err).toMatchObject({ kind: "aborted", message: "The command was cancelled and killed" });
      await expect.poll(() => server.liveCommands(), { timeout: 2000 }).toEqual([]);
    });

    it("refuses at once when already aborted", async () => {
      const before = server.commands.length;
      const err = await sshFailure(run("true", { signal: AbortSignal.abort() }));
      expect(err.kind).toBe("aborted");
      expect(server.commands.length).toBe(before);
    });

    it("on a server that signals only the shell, buildScript still stops the whole command", async () => {
      const shellOnly = await startTestSshServer({ signals: "shell", killOnClose: false });
      const quick = new Ssh2Executor({ killGraceMs: 300 });
      try {
        // A bare command: TERM (then KILL) reaches only the shell; its `sleep` survives.
        await sshFailure(run("sleep 30; echo", { timeoutMs: 300 }, target({}, shellOnly), quick));
        expect(shellOnly.signals).toEqual(["TERM", "KILL"]);
        expect(shellOnly.liveCommands()).toHaveLength(1);
        // The same command through buildScript: the trap forwards TERM to the process group.
        const err = await sshFailure(
          run(buildScript({ command: "sleep 30; echo" }), { timeoutMs: 300 }, target({}, shellOnly), quick),
        );
        expect(err.kind).toBe("command-timeout");
        expect(shellOnly.signals).toEqual(["TERM", "KILL", "TERM"]);
        await expect.poll(() => shellOnly.liveCommands().length, { timeout: 2000 }).toBe(1);
      } finally {
        await shellOnly.stop();
      }
      expect(shellOnly.liveCommands()).toEqual([]);
    });
  });
});

/**
 * An executor that records every DNS lookup and TCP connection it makes.
 * `answers` fakes DNS for some names: each lookup takes the next answer (the
 * last one repeats); other names go to the system resolver.
 */
function watched(networks?: NetworkPolicy, answers: Record<string, string[][]> = {}) {
  const lookups: string[] = [];
  const connects: string[] = [];
  const executor = new Ssh2Executor({
    networks,
    lookup: async (host): Promise<LookupAddress[]> => {
      lookups.push(host);
      const queue = answers[host];
      if (!queue) return dnsLookup(host, { all: true });
      const next = (queue.length > 1 ? queue.shift() : queue[0]) ?? [];
      return next.map((address) => ({ address, family: isIP(address) }));
    },
    connect: (address, port) => {
      connects.push(address);
      return netConnect({ host: address, port });
    },
  });
  return { executor, lookups, connects };
}

const DENY_LOOPBACK: NetworkPolicy = { denyNetworks: ["127.0.0.0/8", "::1/128"], allowNetworks: [] };
const SUFFIX = "HOIST_SSH_DENY_NETWORKS; HOIST_SSH_ALLOW_NETWORKS makes exceptions)";

describe("network policy: addresses are checked when Hoist connects (SSRF)", () => {
  it("refuses a server in a denied network before any TCP connection", async () => {
    const { executor: ex, connects, lookups } = watched(DENY_LOOPBACK);
    const before = server.commands.length;
    const err = await sshFailure(run("touch ran", {}, target(), ex));
    expect(err).toMatchObject({
      kind: "denied",
      status: 403,
      code: "ssh_denied",
      message: `127.0.0.1 is in a network Hoist does not connect to (127.0.0.0/8, ${SUFFIX}`,
    });
    expect({ connects, lookups }).toEqual({ connects: [], lookups: [] });
    expect(server.commands.length).toBe(before);
    expect(server.openConnections()).toBe(0);
  });

  it("refuses a name that resolves into a denied network (localhost), after one lookup", async () => {
    const { executor: ex, connects, lookups } = watched(DENY_LOOPBACK);
    const err = await sshFailure(run("true", {}, target({ host: "localhost" }), ex));
    expect(err.kind).toBe("denied");
    expect(err.message).toMatch(/^localhost resolves to (127\.0\.0\.1|::1), in a network Hoist does not connect to/);
    expect(lookups).toEqual(["localhost"]);
    expect(connects).toEqual([]);
  });

  it("connects when the allow list makes an exception", async () => {
    const { executor: ex, connects } = watched({ ...DENY_LOOPBACK, allowNetworks: ["127.0.0.1"] });
    expect((await run("echo ok", {}, target(), ex)).stdoutTail).toEqual(["ok"]);
    expect(connects).toEqual(["127.0.0.1"]);
  });

  it("refuses cloud metadata by default, in any spelling, without DNS or TCP", async () => {
    const { executor: ex, connects, lookups } = watched(undefined, { "metadata.test": [["169.254.169.254"]] });
    for (const host of ["169.254.169.254", "::ffff:169.254.169.254", "::ffff:a9fe:a9fe", "fd00:ec2::254"]) {
      const err = await sshFailure(run("true", { connectTimeoutMs: 200 }, target({ host }), ex));
      expect(err).toMatchObject({ kind: "denied", message: expect.stringContaining(`${host} is in a network`) });
    }
    const named = await sshFailure(run("true", {}, target({ host: "metadata.test" }), ex));
    expect(named.message).toBe(
      `metadata.test resolves to 169.254.169.254, in a network Hoist does not connect to (169.254.0.0/16, ${SUFFIX}`,
    );
    expect(lookups).toEqual(["metadata.test"]); // literals are not looked up
    expect(connects).toEqual([]);
  });

  it("connects to the address it checked, never to the name again (no DNS rebinding)", async () => {
    const {
      executor: ex,
      connects,
      lookups,
    } = watched(undefined, {
      "rebind.test": [[server.host], ["169.254.169.254"]],
      "mixed.test": [[server.host, "169.254.169.254"]],
    });
    const res = await run("echo ok", {}, target({ host: "rebind.test" }), ex);
    expect(res.stdoutTail).toEqual(["ok"]);
    expect({ lookups, connects }).toEqual({ lookups: ["rebind.test"], connects: [server.host] });
    // One denied address among several refuses the name: which one a client would pick is not ours to bet on.
    const mixed = await sshFailure(run("true", {}, target({ host: "mixed.test" }), ex));
    expect(mixed.message).toContain("mixed.test resolves to 169.254.169.254");
    expect(connects).toEqual([server.host]);
  });

  it("counts DNS against connectTimeoutMs, and a cancel stops the wait", async () => {
    const hang = new Ssh2Executor({ lookup: () => new Promise<LookupAddress[]>(() => {}) });
    const started = Date.now();
    const err = await sshFailure(run("true", { connectTimeoutMs: 300 }, target({ host: "slow.test" }), hang));
    expect(err).toMatchObject({
      kind: "timeout",
      message: `Timed out connecting to slow.test:${server.port} after 300 ms (waiting for DNS)`,
    });
    expect(Date.now() - started).toBeLessThan(1000);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const aborted = await sshFailure(run("true", { signal: controller.signal }, target({ host: "slow.test" }), hang));
    expect(aborted.kind).toBe("aborted");
  });
});

describe("network policy over HTTP", () => {
  it("POST and PUT /api/servers refuse an address literal in a denied network, naming body.address", async () => {
    const t = await testClient();
    const { token } = await t.register("ssrf-literal");
    const body = { name: "meta", address: "169.254.169.254", sshUser: "x", password: "pw-123456" };
    const created = await t.json<{ errors: { path: string; message: string }[] }>("POST", "/api/servers", {
      token,
      body,
    });
    expect(created.status).toBe(400);
    expect(created.body.errors).toEqual([
      {
        path: "body.address",
        message: "169.254.169.254 is in 169.254.0.0/16, a network Hoist does not connect to (HOIST_SSH_DENY_NETWORKS)",
      },
    ]);
    const ok = await t.json<{ id: string }>("POST", "/api/servers", { token, body: { ...body, address: "127.0.0.1" } });
    expect(ok.status).toBe(201);
    const moved = await t.json<{ errors: { path: string }[] }>("PUT", `/api/servers/${ok.body.id}`, {
      token,
      body: { address: "::ffff:169.254.169.254" },
    });
    expect(moved.status).toBe(400);
    expect(moved.body.errors.map((e) => e.path)).toEqual(["body.address"]);
  });

  it("a status check of a server at 169.254.169.254 (stored before the check) says why it is offline", async () => {
    const t = await testClient();
    const { token, user } = await t.register("ssrf-status");
    const { body } = await t.json<{ id: string }>("POST", "/api/servers", {
      token,
      body: { name: "old", address: "192.0.2.1", sshUser: "x", password: "pw-123456" },
    });
    await t.deps.store.update(serverKey(user.id, body.id), { set: { address: "169.254.169.254" } });
    const status = await t.json("GET", `/api/servers/${body.id}/status`, { token });
    expect(status.status).toBe(200);
    const why = `169.254.169.254 is in a network Hoist does not connect to (169.254.0.0/16, ${SUFFIX}`;
    expect(status.body).toMatchObject({ status: "offline", error: { kind: "denied", message: why } });
    expect((await t.json("GET", `/api/servers/${body.id}`, { token })).body).toMatchObject({
      lastError: { kind: "denied", message: why },
    });
  });

  it("a name is accepted, then checked at connect with the configured networks", async () => {
    const t = await testClient({ HOIST_SSH_DENY_NETWORKS: "127.0.0.0/8,::1/128" });
    const { token } = await t.register("ssrf-name");
    const body = { name: "loop", sshUser: server.username, sshPort: server.port, privateKey: server.clientKey.private };
    expect((await t.json("POST", "/api/servers", { token, body: { ...body, address: "127.0.0.1" } })).status).toBe(400);
    const named = await t.json<{ id: string }>("POST", "/api/servers", {
      token,
      body: { ...body, address: "localhost" },
    });
    expect(named.status).toBe(201);
    const before = server.commands.length;
    const status = await t.json<{ error: { kind: string; message: string } }>(
      "GET",
      `/api/servers/${named.body.id}/status`,
      { token },
    );
    expect(status.body.error.kind).toBe("denied");
    expect(status.body.error.message).toMatch(/^localhost resolves to (127\.0\.0\.1|::1), /);
    expect(server.commands.length).toBe(before);
  });
});
