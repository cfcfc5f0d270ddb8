import type { Deps } from "../ports.ts";
import type { OutputStream } from "../servers/ssh.ts";

export type ExecLineMessage = { type: "exec"; id: string; stream: OutputStream; line: string };
export type ExecEnd = {
  /** null when the command did not exit by itself (killed, or never started). */
  exitCode: number | null;
  timedOut?: boolean;
  cancelled?: boolean;
  /** The output passed `HOIST_EXEC_MAX_OUTPUT_BYTES`: the command was stopped there. */
  truncated?: boolean;
  error?: string;
};
export type ExecEndMessage = { type: "exec-end"; id: string } & ExecEnd;

/** Past this many bytes waiting to be posted, the command's SSH channel is paused. */
const HIGH_WATER_BYTES = 256 * 1024;
const LOW_WATER_BYTES = 64 * 1024;

/**
 * An exec's output on its way to the one connection that asked: masked, one
 * `exec` message per line, posted in order as lines arrive, capped at
 * `maxBytes` (past it `onCap` stops the command — the end message says so),
 * then one `exec-end`. A connection that is gone stops the command too.
 */
export class ExecOutput {
  private readonly waiting: ExecLineMessage[] = [];
  private waitingBytes = 0;
  private total = 0;
  private loop: Promise<void> | undefined;
  private waiters: (() => void)[] = [];
  capped = false;
  gone = false;

  constructor(
    private readonly deps: Pick<Deps, "broadcaster" | "logger">,
    private readonly connectionId: string,
    private readonly id: string,
    private readonly mask: (line: string) => string,
    private readonly maxBytes: number,
    private readonly on: { cap(): void; gone(): void },
  ) {}

  readonly line = (stream: OutputStream, raw: string): void => {
    if (this.capped || this.gone) return;
    const line = this.mask(raw);
    const bytes = Buffer.byteLength(line) + 1;
    if (this.total + bytes > this.maxBytes) {
      this.capped = true;
      this.on.cap();
      return;
    }
    this.total += bytes;
    this.waitingBytes += bytes;
    this.waiting.push({ type: "exec", id: this.id, stream, line });
    this.loop ??= this.postLoop().finally(() => {
      this.loop = undefined;
    });
  };

  full(): boolean {
    return this.waitingBytes > HIGH_WATER_BYTES;
  }

  drained(): Promise<void> {
    if (this.waitingBytes <= LOW_WATER_BYTES) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Posts what is left, then `exec-end`. */
  async finish(end: ExecEnd): Promise<void> {
    while (this.loop) await this.loop;
    if (this.gone) return;
    const message: ExecEndMessage = { type: "exec-end", id: this.id, ...end };
    if (this.capped) message.truncated = true;
    await this.post(message);
  }

  private async postLoop(): Promise<void> {
    while (this.waiting.length > 0 && !this.gone) {
      const message = this.waiting.shift() as ExecLineMessage;
      await this.post(message);
      this.waitingBytes -= Buffer.byteLength(message.line) + 1;
      if (this.waitingBytes <= LOW_WATER_BYTES && this.waiters.length > 0) {
        const waiters = this.waiters;
        this.waiters = [];
        for (const wake of waiters) wake();
      }
    }
    if (this.gone) {
      this.waiting.length = 0;
      this.waitingBytes = 0;
      for (const wake of this.waiters.splice(0)) wake();
    }
  }

  private async post(message: ExecLineMessage | ExecEndMessage): Promise<void> {
    try {
      if ((await this.deps.broadcaster.post(this.connectionId, message)) === "gone") {
        this.gone = true;
        this.on.gone();
      }
    } catch (err) {
      this.deps.logger.warn("exec output post failed", { connectionId: this.connectionId, error: err });
    }
  }
}
