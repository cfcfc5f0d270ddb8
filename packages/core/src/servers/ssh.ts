import { createHash } from "node:crypto";
import type { LookupAddress } from "node:dns";
import { lookup as dnsLookup } from "node:dns/promises";
import { isIP, connect as netConnect, type Socket } from "node:net";
import { StringDecoder } from "node:string_decoder";
import ssh2, {
  type AuthMethod,
  type ClientChannel,
  type ConnectConfig,
  type ParsedKey,
  type PasswordAuthMethod,
  type PublicKeyAuthMethod,
} from "ssh2";
import { HoistError } from "../errors.ts";
import { AddressGuard, type NetworkPolicy } from "./networks.ts";

/**
 * The Executor port (DESIGN.md § Shape): run one script on a user's server
 * over SSH, streaming its output line by line. The same ssh2 adapter serves
 * Lambda and the embedded runtime; tests run it against a real SSH server on
 * loopback (testing/ssh-server.ts).
 */

export interface SshTarget {
  host: string;
  port: number;
  username: string;
  privateKey?: string;
  passphrase?: string;
  password?: string;
  /** The pinned host key (`SHA256:…`); null accepts any key and reports it so the caller can pin it. */
  hostKeyFingerprint: string | null;
}

export type OutputStream = "stdout" | "stderr";

export interface ExecOptions {
  /** Written to the command's stdin, which is then closed (it is closed at once without it). */
  stdin?: string;
  /** Limit on the command's run, from the moment the connection is ready. */
  timeoutMs: number;
  /** Limit on DNS, TCP, SSH handshake and authentication together. */
  connectTimeoutMs: number;
  /** Each output line as it arrives, without its line ending. */
  onLine?: (stream: OutputStream, line: string) => void;
  /** Aborting kills the command (deployment cancel). */
  signal?: AbortSignal;
  /** How many last lines of each stream the result keeps (default: the executor's). */
  tailLines?: number;
}

export interface ExecResult {
  /** null when the command was ended by a signal, or the server sent no status. */
  exitCode: number | null;
  /** The signal that ended the command, as Node names them (`SIGTERM`), if one did. */
  signal: string | null;
  stdoutTail: string[];
  stderrTail: string[];
  /** The server's host key, to pin on first use. */
  hostKeyFingerprint: string;
  durationMs: number;
}

export interface Executor {
  exec(target: SshTarget, script: string, opts: ExecOptions): Promise<ExecResult>;
}

export type SshErrorKind =
  | "dns"
  | "denied"
  | "refused"
  | "unreachable"
  | "timeout"
  | "auth"
  | "host-key"
  | "command-timeout"
  | "aborted"
  | "protocol";

/** What failed talking to a server; the message is for the user and never holds a credential. */
export class SshError extends HoistError {
  override name = "SshError";
  constructor(
    readonly kind: SshErrorKind,
    message: string,
    /** The server's host key, when the handshake got that far. */
    readonly hostKeyFingerprint: string | null = null,
  ) {
    super(SSH_ERROR_STATUS[kind] ?? 502, `ssh_${kind.replace("-", "_")}`, message);
  }
}

/** Most failures are the server's (502); running out of time is a 504; a refused address is Hoist's policy (403). */
const SSH_ERROR_STATUS: Partial<Record<SshErrorKind, number>> = { timeout: 504, "command-timeout": 504, denied: 403 };

/** OpenSSH's fingerprint of a raw host key blob: `SHA256:` and unpadded base64. */
export function sshFingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash("sha256").update(keyBlob).digest("base64").replace(/=+$/, "")}`;
}

function sameFingerprint(a: string, b: string): boolean {
  return a.trim().replace(/=+$/, "") === b.trim().replace(/=+$/, "");
}

export const LINE_TRUNCATED_MARKER = " [… line truncated by Hoist]";

/** Splits a byte stream into UTF-8 lines: `\n` or `\r\n`, chunks split anywhere, long lines cut. */
export class LineSplitter {
  private readonly decoder = new StringDecoder("utf8");
  private partial = "";
  private dropping = false;

  constructor(
    private readonly maxLineChars: number,
    private readonly emit: (line: string) => void,
  ) {}

  push(chunk: Buffer): void {
    this.feed(this.decoder.write(chunk));
  }

  /** Flushes the last line when the output does not end with a newline. */
  end(): void {
    this.feed(this.decoder.end());
    if (this.partial !== "") this.flush();
    this.dropping = false;
  }

  private feed(text: string): void {
    let start = 0;
    for (let nl = text.indexOf("\n"); nl !== -1; nl = text.indexOf("\n", start)) {
      this.append(text.slice(start, nl));
      this.flush();
      start = nl + 1;
    }
    this.append(text.slice(start));
  }

  private append(text: string): void {
    if (this.dropping || text === "") return;
    this.partial += text;
    if (this.partial.length > this.maxLineChars) {
      this.emit(this.partial.slice(0, this.maxLineChars) + LINE_TRUNCATED_MARKER);
      this.partial = "";
      this.dropping = true;
    }
  }

  private flush(): void {
    const line = this.partial.endsWith("\r") ? this.partial.slice(0, -1) : this.partial;
    this.partial = "";
    if (this.dropping) this.dropping = false;
    else this.emit(line);
  }
}

export interface Ssh2ExecutorOptions {
  /** Lines of each stream kept for the result (default 50). */
  tailLines?: number;
  /** Longer lines are cut, with {@link LINE_TRUNCATED_MARKER} (default 16 384 characters). */
  maxLineChars?: number;
  /** After TERM on timeout/abort, how long the command gets before KILL (default 3000 ms). */
  killGraceMs?: number;
  /** How long a polite disconnect may take before the socket is destroyed (default 1000 ms). */
  closeGraceMs?: number;
  /** SSH keepalives while a command runs; the connection is dropped after `keepaliveCountMax` unanswered (default 10 000 ms × 3). */
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
  /**
   * Networks Hoist refuses to connect to, and the exceptions (`config.ssh`
   * fits). Default: link-local and cloud metadata addresses only.
   */
  networks?: NetworkPolicy;
  /** Resolves a host name to all its addresses (tests may inject; default: the system resolver, `dns.lookup`). */
  lookup?: (host: string) => Promise<LookupAddress[]>;
  /** Opens the TCP connection to an address already resolved and checked (tests may inject). */
  connect?: (address: string, port: number) => Socket;
}

type Phase = "dns" | "tcp" | "handshake" | "auth" | "exec";

const PHASE_WAITING: Record<Phase, string> = {
  dns: "waiting for DNS",
  tcp: "waiting for the TCP connection",
  handshake: "waiting for the SSH handshake",
  auth: "waiting for authentication",
  exec: "running the command",
};

/** setTimeout fires at once beyond this (2^31 - 1 ms, about 24.8 days). */
const MAX_TIMER_MS = 2_147_483_647;
const DNS_CODES = new Set(["ENOTFOUND", "EAI_AGAIN", "EAI_NONAME", "EAI_FAIL", "EAI_NODATA"]);
const UNREACHABLE_CODES = new Set(["EHOSTUNREACH", "ENETUNREACH", "EHOSTDOWN", "ENETDOWN"]);

/** The Executor over the `ssh2` client: one connection per exec, host key pinned, always closed. */
export class Ssh2Executor implements Executor {
  private readonly tailLines: number;
  private readonly maxLineChars: number;
  private readonly killGraceMs: number;
  private readonly closeGraceMs: number;
  private readonly keepaliveIntervalMs: number;
  private readonly keepaliveCountMax: number;
  private readonly connect: (address: string, port: number) => Socket;
  private readonly lookup: (host: string) => Promise<LookupAddress[]>;
  private readonly guard: AddressGuard;

  constructor(opts: Ssh2ExecutorOptions = {}) {
    this.tailLines = opts.tailLines ?? 50;
    this.maxLineChars = opts.maxLineChars ?? 16_384;
    this.killGraceMs = opts.killGraceMs ?? 3000;
    this.closeGraceMs = opts.closeGraceMs ?? 1000;
    this.keepaliveIntervalMs = opts.keepaliveIntervalMs ?? 10_000;
    this.keepaliveCountMax = opts.keepaliveCountMax ?? 3;
    this.connect = opts.connect ?? ((address, port) => netConnect({ host: address, port }));
    this.lookup = opts.lookup ?? ((host) => dnsLookup(host, { all: true }));
    this.guard = new AddressGuard(opts.networks);
  }

  /**
   * The address to connect to. A name is resolved here, once, and every
   * address it has is checked against the network policy (one denied address
   * refuses the lot, so a name cannot mix a decoy with a target); the
   * connection then goes to the checked address, never to the name again, so
   * DNS has no second chance to answer differently (rebinding). The first
   * address in the resolver's order is used (no fallback to the others).
   */
  private async resolve(target: SshTarget, opts: ExecOptions, startedAt: number): Promise<string> {
    const where = `${target.host}:${target.port}`;
    const family = isIP(target.host);
    const literal = family !== 0;
    const addresses = literal ? [{ address: target.host, family }] : await this.lookupWithin(target, opts, startedAt);
    for (const { address } of addresses) {
      const cidr = this.guard.deniedBy(address);
      if (!cidr) continue;
      const what = literal ? `${address} is` : `${target.host} resolves to ${address},`;
      throw new SshError(
        "denied",
        `${what} in a network Hoist does not connect to (${cidr}, HOIST_SSH_DENY_NETWORKS; HOIST_SSH_ALLOW_NETWORKS makes exceptions)`,
      );
    }
    const first = addresses[0];
    if (!first) throw new SshError("dns", `DNS lookup failed for ${target.host} (no addresses)`);
    if (opts.signal?.aborted) throw new SshError("aborted", `Cancelled while connecting to ${where}`);
    return first.address;
  }

  /** The lookup, within the connect timeout and cancellable (a lookup itself cannot be stopped: its answer is ignored). */
  private lookupWithin(target: SshTarget, opts: ExecOptions, startedAt: number): Promise<LookupAddress[]> {
    const where = `${target.host}:${target.port}`;
    return new Promise((resolve, reject) => {
      const fail = (error: SshError) => {
        cleanup();
        reject(error);
      };
      const timer = setTimeout(
        () =>
          fail(
            new SshError(
              "timeout",
              `Timed out connecting to ${where} after ${opts.connectTimeoutMs} ms (${PHASE_WAITING.dns})`,
            ),
          ),
        Math.min(Math.max(0, opts.connectTimeoutMs - (performance.now() - startedAt)), MAX_TIMER_MS),
      );
      const onAbort = () => fail(new SshError("aborted", `Cancelled while connecting to ${where}`));
      const cleanup = () => {
        clearTimeout(timer);
        opts.signal?.removeEventListener("abort", onAbort);
      };
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      this.lookup(target.host).then(
        (addresses) => {
          cleanup();
          resolve(addresses);
        },
        (err: Error & { code?: string }) => {
          const code = err.code ?? "";
          fail(
            new SshError(
              "dns",
              `DNS lookup failed for ${target.host}${DNS_CODES.has(code) ? "" : ` (${code || err.message})`}`,
            ),
          );
        },
      );
    });
  }

  async exec(target: SshTarget, script: string, opts: ExecOptions): Promise<ExecResult> {
    const where = `${target.host}:${target.port}`;
    if (opts.signal?.aborted) throw new SshError("aborted", `Cancelled before connecting to ${where}`);
    if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65_535)
      throw new SshError("protocol", `Invalid SSH port ${target.port} for ${target.host}`);
    const privateKey =
      target.privateKey === undefined ? undefined : loadPrivateKey(target.privateKey, target.passphrase);
    const startedAt = performance.now();
    const address = await this.resolve(target, opts, startedAt);
    return new Promise<ExecResult>((resolve, reject) => {
      const tailLimit = opts.tailLines ?? this.tailLines;
      const tails: Record<OutputStream, string[]> = { stdout: [], stderr: [] };
      let phase: Phase = "tcp";
      let fingerprint: string | null = null;
      let mismatch = false;
      let channel: ClientChannel | undefined;
      let channelClosed = false;
      let onChannelClosed: (() => void) | undefined;
      let exit: { code: number | null; signal: string | null } = { code: null, signal: null };
      let terminating = false;
      let done = false;
      let socketClosed = false;
      let onSocketClosed: (() => void) | undefined;
      const timers = new Set<NodeJS.Timeout>();
      const later = (ms: number, fn: () => void) => {
        const timer = setTimeout(
          () => {
            timers.delete(timer);
            fn();
          },
          Math.min(ms, MAX_TIMER_MS),
        );
        timers.add(timer);
        return timer;
      };

      const socket = this.connect(address, target.port);
      const client = new ssh2.Client();
      socket.on("connect", () => {
        if (phase === "tcp") phase = "handshake";
      });
      socket.on("close", () => {
        socketClosed = true;
        onSocketClosed?.();
      });

      /** Ends the connection politely, destroys it if that stalls, and settles once the socket is closed. */
      const finish = (outcome: { result: ExecResult } | { error: unknown }) => {
        if (done) return;
        done = true;
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
        opts.signal?.removeEventListener("abort", onAbort);
        const settle = () => {
          clearTimeout(destroyTimer);
          if ("result" in outcome) resolve(outcome.result);
          else reject(outcome.error);
        };
        const destroyTimer = setTimeout(() => {
          socket.destroy();
          settle();
        }, this.closeGraceMs);
        if (socketClosed) return settle();
        onSocketClosed = settle;
        // Once connected, say goodbye (the server then closes); before that there is nobody to be polite to.
        if (phase !== "exec") return void socket.destroy();
        try {
          client.end();
        } catch {
          socket.destroy();
        }
      };

      /** TERM, then KILL after the grace period, then close: the command must not outlive us. */
      const terminate = (error: unknown) => {
        if (terminating || done) return;
        terminating = true;
        const ch = channel;
        if (!ch || channelClosed) return finish({ error });
        const waitClosed = (ms: number) =>
          new Promise<boolean>((ok) => {
            if (channelClosed) return ok(true);
            onChannelClosed = () => ok(true);
            later(ms, () => ok(false));
          });
        void (async () => {
          sendSignal(ch, "TERM");
          if (!(await waitClosed(this.killGraceMs))) {
            sendSignal(ch, "KILL");
            await waitClosed(Math.min(this.killGraceMs, 1000));
          }
          ch.close();
          finish({ error });
        })();
      };

      const onAbort = () => {
        if (phase === "exec") terminate(new SshError("aborted", "The command was cancelled and killed", fingerprint));
        else finish({ error: new SshError("aborted", `Cancelled while connecting to ${where}`, fingerprint) });
      };
      opts.signal?.addEventListener("abort", onAbort, { once: true });

      // DNS has already spent part of the connect timeout.
      const connectTimer = later(Math.max(0, opts.connectTimeoutMs - (performance.now() - startedAt)), () => {
        finish({
          error: new SshError(
            "timeout",
            `Timed out connecting to ${where} after ${opts.connectTimeoutMs} ms (${PHASE_WAITING[phase]})`,
            fingerprint,
          ),
        });
      });

      const lineHandler = (stream: OutputStream) => (line: string) => {
        const tail = tails[stream];
        tail.push(line);
        if (tail.length > tailLimit) tail.shift();
        if (!opts.onLine || done) return;
        try {
          opts.onLine(stream, line);
        } catch (err) {
          terminate(err);
        }
      };

      client.on("handshake", () => {
        phase = "auth";
      });
      client.on("error", (err: Error & { level?: string; code?: string }) => {
        if (terminating) return;
        if (phase === "exec" && channel && !channelClosed) terminate(toSshError(err));
        else finish({ error: toSshError(err) });
      });
      client.on("close", () => {
        if (terminating) return;
        finish({
          error: new SshError(
            "protocol",
            `The connection to ${where} closed unexpectedly (${PHASE_WAITING[phase]})`,
            fingerprint,
          ),
        });
      });
      client.on("ready", () => {
        clearTimeout(connectTimer);
        timers.delete(connectTimer);
        phase = "exec";
        later(opts.timeoutMs, () =>
          terminate(
            new SshError("command-timeout", `Command timed out after ${opts.timeoutMs} ms and was killed`, fingerprint),
          ),
        );
        client.exec(script, (err, ch) => {
          if (err) return finish({ error: new SshError("protocol", `Could not start the command: ${err.message}`) });
          if (done || terminating) {
            ch.close();
            return;
          }
          channel = ch;
          const out = new LineSplitter(this.maxLineChars, lineHandler("stdout"));
          const errOut = new LineSplitter(this.maxLineChars, lineHandler("stderr"));
          ch.on("data", (chunk: Buffer) => out.push(chunk));
          ch.stderr.on("data", (chunk: Buffer) => errOut.push(chunk));
          ch.on("exit", (code: number | null, signal?: string) => {
            exit = { code: typeof code === "number" ? code : null, signal: signal ?? null }; // ssh2 says `SIGTERM`
          });
          let stderrEnded = false;
          ch.stderr.once("end", () => {
            stderrEnded = true;
          });
          const complete = () => {
            out.end();
            errOut.end();
            finish({
              result: {
                exitCode: exit.code,
                signal: exit.signal,
                stdoutTail: tails.stdout,
                stderrTail: tails.stderr,
                hostKeyFingerprint: fingerprint ?? "",
                durationMs: Math.round(performance.now() - startedAt),
              },
            });
          };
          ch.on("close", () => {
            channelClosed = true;
            if (terminating) {
              out.end();
              errOut.end();
              return onChannelClosed?.();
            }
            // ssh2 emits close once stdout has ended, but stderr may still hold a last chunk.
            if (stderrEnded) return complete();
            ch.stderr.once("end", complete);
            later(1000, complete);
          });
          ch.end(opts.stdin ?? "");
        });
      });

      const toSshError = (err: Error & { level?: string; code?: string }): SshError => {
        if (mismatch && fingerprint) {
          return new SshError(
            "host-key",
            `Host key mismatch for ${where}: expected ${target.hostKeyFingerprint}, got ${fingerprint}. ` +
              "If the server was reinstalled, clear the pinned key to accept the new one.",
            fingerprint,
          );
        }
        const code = err.code ?? "";
        if (DNS_CODES.has(code) || err.level === "client-dns")
          return new SshError("dns", `DNS lookup failed for ${target.host}`);
        if (code === "ECONNREFUSED") return new SshError("refused", `Connection refused by ${where}`);
        if (UNREACHABLE_CODES.has(code)) return new SshError("unreachable", `${where} is unreachable (${code})`);
        if (code === "ETIMEDOUT")
          return new SshError("timeout", `Timed out connecting to ${where} (${PHASE_WAITING[phase]})`, fingerprint);
        if (err.level === "client-authentication") {
          const tried = [privateKey && "private key", target.password !== undefined && "password"].filter(Boolean);
          return new SshError(
            "auth",
            `Authentication failed for user ${target.username} on ${where} (tried: ${tried.join(", ") || "none"})`,
            fingerprint,
          );
        }
        if (err.level === "client-timeout")
          return new SshError("timeout", `Lost the connection to ${where}: keepalives went unanswered`, fingerprint);
        if (code === "ECONNRESET" || code === "EPIPE")
          return new SshError(
            "protocol",
            `The connection to ${where} was reset (${PHASE_WAITING[phase]})`,
            fingerprint,
          );
        return new SshError("protocol", `SSH error with ${where}: ${err.message}`, fingerprint);
      };

      const config: ConnectConfig = {
        sock: socket,
        username: target.username,
        authHandler: authMethods(target, privateKey),
        readyTimeout: 0, // our connect timer covers DNS + TCP + handshake + auth
        keepaliveInterval: this.keepaliveIntervalMs,
        keepaliveCountMax: this.keepaliveCountMax,
        hostVerifier: (key: Buffer) => {
          fingerprint = sshFingerprint(key);
          mismatch = target.hostKeyFingerprint !== null && !sameFingerprint(target.hostKeyFingerprint, fingerprint);
          return !mismatch;
        },
      };
      try {
        client.connect(config);
      } catch (err) {
        finish({ error: new SshError("protocol", `Could not start the SSH connection: ${(err as Error).message}`) });
      }
    });
  }
}

/** Explicit methods: key, then password (no "none" probe); the parsed key is used as is, not decrypted again. */
function authMethods(target: SshTarget, privateKey: ParsedKey | undefined): AuthMethod[] {
  const methods: (PublicKeyAuthMethod | PasswordAuthMethod)[] = [];
  if (privateKey) methods.push({ type: "publickey", username: target.username, key: privateKey });
  if (target.password !== undefined)
    methods.push({ type: "password", username: target.username, password: target.password });
  return methods;
}

/** Parses the key up front so a bad key or passphrase fails clearly, before any connection. */
function loadPrivateKey(key: string, passphrase: string | undefined): ParsedKey {
  const parsed: ParsedKey | ParsedKey[] | Error = ssh2.utils.parseKey(key, passphrase || undefined);
  if (parsed instanceof Error) {
    const message = parsed.message;
    if (/no passphrase given/i.test(message))
      throw new SshError("auth", "The private key is encrypted: a passphrase is needed");
    if (passphrase && /passphrase|decrypt/i.test(message))
      throw new SshError("auth", "Wrong passphrase for the private key");
    throw new SshError("auth", `The private key could not be read (${message})`);
  }
  const first = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!first || first.getPrivatePEM() === null)
    throw new SshError("auth", "The private key could not be read (it holds no private key; is it a public key?)");
  return first;
}

/**
 * Sends a signal request on the session. ssh2's `channel.signal()` does nothing
 * once our side has sent EOF (stdin closed, which is always the case here), but
 * the protocol allows it: go to the protocol object then.
 */
function sendSignal(channel: ClientChannel, name: "TERM" | "KILL"): void {
  const internals = channel as unknown as {
    outgoing?: { id: number; state: string };
    _client?: { _protocol?: { signal?: (id: number, name: string) => void } };
  };
  try {
    if (channel.writable) {
      channel.signal(name);
      return;
    }
    const proto = internals._client?._protocol;
    const out = internals.outgoing;
    if (out && (out.state === "open" || out.state === "eof") && typeof proto?.signal === "function") {
      proto.signal(out.id, name);
    }
  } catch {
    // The connection is going away anyway; closing it follows.
  }
}
