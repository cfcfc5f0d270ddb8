import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes, timingSafeEqual } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import ssh2, { type AuthContext, type Connection, type ParsedKey, type ServerChannel } from "ssh2";
import { sshFingerprint } from "../servers/ssh.ts";
import { serveSftp } from "./sftp-server.ts";

/**
 * A real SSH server on loopback for tests (ssh2's Server): `exec` runs
 * `/bin/sh -c <command>` locally, each in its own process group; the `sftp`
 * subsystem serves the local filesystem (testing/sftp-server.ts). No mocks:
 * the Executor talks SSH to it exactly as to a user's server.
 */

export interface TestSshServerOptions {
  /** Working directory of the commands (default: a fresh temp dir, removed by `stop()`). */
  cwd?: string;
  /** The user the server accepts (default `deploy`). */
  username?: string;
  /** The password it accepts (default: random). */
  password?: string;
  /** More public keys (OpenSSH format) the server accepts besides `clientKey`. */
  authorizedKeys?: string[];
  /** Accept TCP connections but never speak SSH (to test connect timeouts). */
  stallHandshake?: boolean;
  /** Wait this long before answering each authentication attempt. */
  authDelayMs?: number;
  /**
   * Where a "signal" request lands: `group` (default) signals the command's
   * process group, as OpenSSH does (`killpg`); `shell` only the shell itself,
   * as some servers do.
   */
  signals?: "group" | "shell";
  /** Kill the command's process group when its channel closes (default true; OpenSSH does not). */
  killOnClose?: boolean;
  /** Directories put before the PATH of every command (stand-ins such as a fake `docker`). */
  pathPrefix?: string[];
}

export interface TestSshServer {
  host: "127.0.0.1";
  port: number;
  username: string;
  password: string;
  /** `SHA256:…` of the server's ed25519 host key. */
  hostKeyFingerprint: string;
  /** An ed25519 key pair the server accepts (OpenSSH formats). */
  clientKey: { private: string; public: string };
  cwd: string;
  /** Every command received, in order. */
  commands: string[];
  /** Every signal request received (`TERM`, `KILL`, …). */
  signals: string[];
  /** Every SFTP request that opens or changes something (`OPEN /abs/path`, `WRITE …`, `MKDIR …`, `SETSTAT …`), in order. */
  sftpRequests: string[];
  /** Pids of the commands whose process group still has a live (non-zombie) process. */
  liveCommands(): number[];
  /** TCP connections the server still has open. */
  openConnections(): number;
  stop(): Promise<void>;
}

/**
 * An ed25519 pair that ssh2 can read back: about 1 in 500 of the keys
 * `generateKeyPairSync` writes fail its own parser ("Malformed OpenSSH
 * private key"), which made any test starting a server fail at random.
 */
export function ed25519KeyPair(): { private: string; public: string } {
  for (;;) {
    const pair = ssh2.utils.generateKeyPairSync("ed25519");
    if (!(ssh2.utils.parseKey(pair.private) instanceof Error)) return pair;
  }
}

export async function startTestSshServer(opts: TestSshServerOptions = {}): Promise<TestSshServer> {
  const cwd = opts.cwd ?? (await mkdtemp(join(tmpdir(), "hoist-ssh-")));
  const username = opts.username ?? "deploy";
  const password = opts.password ?? randomBytes(12).toString("hex");
  const signalMode = opts.signals ?? "group";
  const killOnClose = opts.killOnClose ?? true;
  const hostKey = ed25519KeyPair();
  const clientKey = ed25519KeyPair();
  const allowedKeys = [clientKey.public, ...(opts.authorizedKeys ?? [])].map(parse);
  const commands: string[] = [];
  const signals: string[] = [];
  const sftpRequests: string[] = [];
  const children = new Set<ChildProcess>();
  const spawned: number[] = [];
  const connections = new Set<Connection>();
  const sockets = new Set<Socket>();

  const onClient = (client: Connection) => {
    connections.add(client);
    client.on("close", () => connections.delete(client));
    client.on("error", () => {});
    client.on("authentication", (ctx) => {
      const answer = () => authenticate(ctx, username, password, allowedKeys);
      if (opts.authDelayMs) setTimeout(answer, opts.authDelayMs);
      else answer();
    });
    client.on("ready", () => {
      client.on("session", (acceptSession) => {
        const session = acceptSession();
        // ssh2's server drops every channel request after the client's EOF (stdin closed);
        // OpenSSH still honours "signal" then, and so should we.
        session.on("eof", () => {
          (session as unknown as { _ending: boolean })._ending = false;
        });
        session.on("sftp", (acceptSftp) => serveSftp(acceptSftp(), cwd, (request) => sftpRequests.push(request)));
        let child: ChildProcess | undefined;
        session.on("signal", (accept, _reject, info) => {
          accept?.();
          signals.push(info.name);
          if (child?.pid) kill(signalMode === "group" ? -child.pid : child.pid, `SIG${info.name}`);
        });
        session.on("exec", (accept, _reject, info) => {
          const stream = accept();
          commands.push(info.command);
          child = runCommand(info.command, cwd, stream, opts.pathPrefix ?? []);
          children.add(child);
          if (child.pid) spawned.push(child.pid);
          const proc = child;
          proc.on("close", () => children.delete(proc));
          stream.on("close", () => {
            if (killOnClose && proc.exitCode === null && proc.signalCode === null) killGroup(proc);
          });
        });
      });
    });
  };

  const ssh = new ssh2.Server({ hostKeys: [hostKey.private] }, onClient);
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    socket.setNoDelay(true); // as sshd does: no delayed-ACK stalls between small requests (SFTP's)
    if (opts.stallHandshake)
      socket.resume(); // read and ignore, so the client's close is seen
    else ssh.injectSocket(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("test SSH server has no TCP address");

  return {
    host: "127.0.0.1",
    port: address.port,
    username,
    password,
    hostKeyFingerprint: sshFingerprint(parse(hostKey.public).getPublicSSH()),
    clientKey,
    cwd,
    commands,
    signals,
    sftpRequests,
    liveCommands: () => spawned.filter(groupAlive),
    openConnections: () => sockets.size,
    async stop() {
      for (const child of children) if (child.pid) kill(-child.pid, "SIGKILL");
      for (const pid of spawned) if (groupAlive(pid)) kill(-pid, "SIGKILL");
      for (const client of connections) client.end();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      // SIGKILL is delivered asynchronously: return once nothing is left running.
      for (let waited = 0; waited < 2000 && spawned.some(groupAlive); waited += 20) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      if (opts.cwd === undefined) await rm(cwd, { recursive: true, force: true });
    },
  };
}

function parse(key: string): ParsedKey {
  const parsed = ssh2.utils.parseKey(key);
  const first = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!first || first instanceof Error) throw new Error(`test SSH server: bad key: ${String(first)}`);
  return first;
}

function authenticate(ctx: AuthContext, username: string, password: string, allowedKeys: ParsedKey[]): void {
  if (isAllowed(ctx, username, password, allowedKeys)) ctx.accept();
  else ctx.reject(["publickey", "password"]);
}

function isAllowed(ctx: AuthContext, username: string, password: string, allowedKeys: ParsedKey[]): boolean {
  if (ctx.username !== username) return false;
  if (ctx.method === "password") {
    const given = Buffer.from(ctx.password);
    const expected = Buffer.from(password);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }
  if (ctx.method !== "publickey") return false;
  const key = ctx.key;
  const allowedKey = allowedKeys.find((k) => k.type === key.algo && key.data.equals(k.getPublicSSH()));
  if (!allowedKey) return false;
  // Without a signature this is the client asking whether the key would do.
  if (!ctx.signature || !ctx.blob) return true;
  return allowedKey.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true;
}

/** `/bin/sh -c command` in its own process group, piped to the channel; reports exit status or signal. */
function runCommand(command: string, cwd: string, stream: ServerChannel, pathPrefix: string[]): ChildProcess {
  const path = [...pathPrefix, process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin"].join(":");
  const child = spawn("/bin/sh", ["-c", command], {
    cwd,
    detached: true,
    stdio: ["pipe", "pipe", "pipe"],
    env: { PATH: path, HOME: cwd, LANG: "C.UTF-8" },
  });
  child.stdin?.on("error", () => {});
  child.stdout?.on("error", () => {});
  child.stderr?.on("error", () => {});
  stream.on("error", () => {});
  if (child.stdin) stream.pipe(child.stdin);
  child.stdout?.pipe(stream, { end: false });
  child.stderr?.pipe(stream.stderr, { end: false });
  child.on("error", (err) => {
    stream.stderr.write(`test SSH server: ${err.message}\n`);
    stream.exit(127);
    stream.end();
  });
  child.on("close", (code, signal) => {
    const end = () => {
      if (signal) stream.exit(signal.replace(/^SIG/, ""), false, "");
      else stream.exit(code ?? 255);
      stream.end();
    };
    // stderr still waiting for the client's window (a paused reader) goes out first, as sshd sends it:
    // ending the channel before would drop it. ('drain' only follows a write that filled the buffer: poll.)
    const startedWaiting = Date.now();
    const endOnceSent = () =>
      stream.stderr.writableLength > 0 && !stream.destroyed && Date.now() - startedWaiting < 60_000
        ? setTimeout(endOnceSent, 10)
        : end();
    endOnceSent();
  });
  return child;
}

function killGroup(child: ChildProcess): void {
  const pid = child.pid;
  if (!pid) return;
  kill(-pid, "SIGTERM");
  setTimeout(() => {
    if (groupAlive(pid)) kill(-pid, "SIGKILL");
  }, 500).unref();
}

function kill(pid: number, signal: string): void {
  try {
    process.kill(pid, signal as NodeJS.Signals);
  } catch {
    // Already gone.
  }
}

/** Whether process group `pgid` has a process that is not a zombie (orphans may never be reaped in containers). */
function groupAlive(pgid: number): boolean {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) === pgid && fields[0] !== "Z") return true;
    } catch {
      // The process ended while we looked.
    }
  }
  return false;
}
