import type { ClientChannel } from "ssh2";
import { MAX_TIMER_MS } from "./ssh-connection.ts";
import { SshError } from "./ssh-error.ts";
import { LineSplitter } from "./ssh-lines.ts";
import type { Lease } from "./ssh-pool.ts";

/** One command on its own channel of a (possibly shared) connection: output, timeout, cancel, backpressure. */

export type OutputStream = "stdout" | "stderr";

export interface ExecOptions {
  /** Written to the command's stdin, which is then closed (it is closed at once without it). */
  stdin?: string;
  /** Limit on the command's run, from the moment it has a connection. */
  timeoutMs: number;
  /** Limit on obtaining a connection: DNS, TCP, SSH handshake and authentication together (nothing when one is open). */
  connectTimeoutMs: number;
  /** Each output line as it arrives, without its line ending. */
  onLine?: (stream: OutputStream, line: string) => void;
  /** Aborting kills the command (deployment cancel); never the connection it shares. */
  signal?: AbortSignal;
  /** How many last lines of each stream the result keeps (default: the executor's). */
  tailLines?: number;
  /** A consumer that can fall behind: after a chunk of output, while `full()` is true the channel (stdout and stderr) is paused, and resumed when `drained()` resolves. */
  flow?: { full(): boolean; drained(): Promise<void> };
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

export interface CommandSettings {
  tailLines: number;
  maxLineChars: number;
  killGraceMs: number;
}

/** What {@link runCommand} returns, when allowed to, if no channel could be opened: try again on a fresh connection. */
export const STALE = Symbol("stale connection");

/**
 * ssh2's errors for a channel that was never opened, so the command never
 * reached the server and running it elsewhere is safe ("Unable to exec", a
 * refused exec request on an open channel, is not one of them).
 */
export const NOT_OPENED =
  /^(Not connected|No response from server|No free channels available|\(SSH\) Channel open failure)/;

/**
 * Runs `script` on a channel of the lease's connection; releases the lease
 * before settling. With `mayRetry`, a channel that could not be opened (a
 * connection gone stale while idle, or a server refusing one more session on
 * it) resolves {@link STALE} and the connection takes no new command.
 */
export function runCommand(
  lease: Lease,
  script: string,
  opts: ExecOptions,
  settings: CommandSettings,
  startedAt: number,
  mayRetry: boolean,
): Promise<ExecResult | typeof STALE> {
  const connection = lease.connection;
  const fingerprint = connection.fingerprint;
  return new Promise((resolve, reject) => {
    const tailLimit = opts.tailLines ?? settings.tailLines;
    const tails: Record<OutputStream, string[]> = { stdout: [], stderr: [] };
    let channel: ClientChannel | undefined;
    let channelClosed = false;
    let onChannelClosed: (() => void) | undefined;
    let exit: { code: number | null; signal: string | null } = { code: null, signal: null };
    let terminating = false;
    let throttled = false;
    let done = false;
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

    /** Gives the channel's slot back (closing the connection if it was its last and it is not kept), then settles. */
    const finish = (outcome: { result: ExecResult } | { error: unknown } | typeof STALE, retire = false) => {
      if (done) return;
      done = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      opts.signal?.removeEventListener("abort", onAbort);
      stopListening();
      // The retry need not wait for a stale connection's goodbye.
      if (outcome === STALE) {
        void lease.release(true);
        return resolve(STALE);
      }
      void lease.release(retire).then(() => ("result" in outcome ? resolve(outcome.result) : reject(outcome.error)));
    };

    /** TERM, then KILL after the grace period, then close the channel: the command must not outlive us. */
    const terminate = (error: unknown) => {
      if (terminating || done) return;
      terminating = true;
      const ch = channel;
      if (!ch || channelClosed) return finish({ error });
      if (throttled) resume(ch); // a paused channel never closes
      const waitClosed = (ms: number) =>
        new Promise<boolean>((ok) => {
          if (channelClosed) return ok(true);
          onChannelClosed = () => ok(true);
          later(ms, () => ok(false));
        });
      void (async () => {
        sendSignal(ch, "TERM");
        if (!(await waitClosed(settings.killGraceMs))) {
          sendSignal(ch, "KILL");
          await waitClosed(Math.min(settings.killGraceMs, 1000));
        }
        const closed = channelClosed;
        ch.close();
        // A channel the server does not close may hold one of its sessions: put nothing more on that connection.
        finish({ error }, !closed);
      })();
    };

    const onAbort = () => terminate(new SshError("aborted", "The command was cancelled and killed", fingerprint));
    // A lost connection fails the running command; before the channel opens, its callback says what happened.
    const stopListening = connection.onLost((error) => {
      if (channel && !channelClosed && !terminating) finish({ error });
    });
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    later(opts.timeoutMs, () =>
      terminate(
        new SshError("command-timeout", `Command timed out after ${opts.timeoutMs} ms and was killed`, fingerprint),
      ),
    );

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

    const resume = (ch: ClientChannel) => {
      throttled = false;
      ch.resume();
      ch.stderr.resume();
    };
    /** After a chunk: if the consumer is full, pause both streams (SSH flow control then stops the server) until it drains. */
    const throttle = (ch: ClientChannel) => {
      const flow = opts.flow;
      if (!flow || throttled || terminating || done) return;
      try {
        if (!flow.full()) return;
        throttled = true;
        ch.pause();
        ch.stderr.pause();
        flow.drained().then(
          () => throttled && resume(ch),
          (err: unknown) => terminate(err),
        );
      } catch (err) {
        terminate(err);
      }
    };

    const onChannel = (ch: ClientChannel) => {
      if (done) return void ch.close();
      channel = ch;
      const out = new LineSplitter(settings.maxLineChars, lineHandler("stdout"));
      const errOut = new LineSplitter(settings.maxLineChars, lineHandler("stderr"));
      ch.on("data", (chunk: Buffer) => {
        out.push(chunk);
        throttle(ch);
      });
      ch.stderr.on("data", (chunk: Buffer) => {
        errOut.push(chunk);
        throttle(ch);
      });
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
            hostKeyFingerprint: fingerprint,
            durationMs: Math.round(performance.now() - startedAt),
          },
        });
      };
      // Only a stderr that never ends is cut short, not one paused for a slow consumer or still delivering.
      let seen = -1;
      const completeSoon = () => {
        const left = ch.stderr.readableLength;
        const delivering = left > 0 && left !== seen;
        seen = left;
        if (throttled || delivering) later(1000, completeSoon);
        else complete();
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
        later(1000, completeSoon);
      });
      ch.end(opts.stdin ?? "");
    };
    connection.exec(script, (err, ch) => {
      if (ch) return onChannel(ch);
      if (done) return;
      // The command never reached the server: running it on another connection is safe.
      if (mayRetry && NOT_OPENED.test(err?.message ?? "")) return finish(STALE);
      const why = err?.message ?? "no channel";
      finish({ error: connection.lost ?? new SshError("protocol", `Could not start the command: ${why}`) });
    });
  });
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
