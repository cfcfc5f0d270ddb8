import type { Deps } from "../ports.ts";
import { jsonBytes, MAX_MESSAGE_BYTES, publish } from "../realtime/publish.ts";
import type { AppLogLine } from "./compose-logs.ts";
import { appLogsChannel } from "./entity.ts";

/** Past this many bytes waiting, the tail's SSH channel is paused until the backlog is down to the low mark. */
const HIGH_WATER_BYTES = 1024 * 1024;
const LOW_WATER_BYTES = 256 * 1024;
/** One fan-out carries at most this much; what arrives meanwhile goes in the next. */
const PUBLISH_BYTES = 256 * 1024;

export type AppLogMessage = { type: "app-log"; appId: string; lines: AppLogLine[] };

const sizeOf = (l: AppLogLine) => jsonBytes(l.line) + jsonBytes(l.service) + 80;

/** Splits lines into `app-log` messages that each fit one WebSocket frame (a longer single line travels alone). */
export function appLogMessages(appId: string, lines: AppLogLine[]): AppLogMessage[] {
  const messages: AppLogMessage[] = [];
  let batch: AppLogLine[] = [];
  let size = 0;
  for (const line of lines) {
    const bytes = sizeOf(line);
    if (batch.length > 0 && size + bytes > MAX_MESSAGE_BYTES) {
      messages.push({ type: "app-log", appId, lines: batch });
      batch = [];
      size = 0;
    }
    batch.push(line);
    size += bytes;
  }
  if (batch.length > 0) messages.push({ type: "app-log", appId, lines: batch });
  return messages;
}

/**
 * Publishes a tail's lines to `app-logs:<appId>` in order, micro-batched:
 * whatever arrived while the previous fan-out was out goes in the next one
 * (no timer). Backpressure for the SSH channel (`full`/`drained`). `hold()`
 * keeps new lines back while the tail decides whether it ends.
 */
export class AppLogPublisher {
  private readonly waiting: AppLogLine[] = [];
  private bytes = 0;
  private held = false;
  private loop: Promise<void> | undefined;
  private waiters: (() => void)[] = [];
  /** Lines handed to subscribers (the figure tests and logs look at). */
  published = 0;

  constructor(
    private readonly deps: Pick<Deps, "store" | "broadcaster" | "logger">,
    private readonly appId: string,
  ) {}

  push(line: AppLogLine): void {
    this.waiting.push(line);
    this.bytes += sizeOf(line);
    this.kick();
  }

  full(): boolean {
    return this.bytes > HIGH_WATER_BYTES;
  }

  drained(): Promise<void> {
    if (this.bytes <= LOW_WATER_BYTES) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Keeps lines that arrive from now on back, until `resume()` or `discard()`. */
  async hold(): Promise<void> {
    this.held = true;
    await this.loop;
  }

  resume(): void {
    this.held = false;
    this.kick();
  }

  /** Drops what is held back (no subscriber is left to see it). */
  discard(): void {
    this.waiting.length = 0;
    this.release(this.bytes);
  }

  /** Resolves once everything pushed so far has been published. */
  async flush(): Promise<void> {
    this.held = false;
    this.kick();
    while (this.loop) await this.loop;
  }

  private kick(): void {
    if (this.held || this.loop || this.waiting.length === 0) return;
    this.loop = this.publishLoop().finally(() => {
      this.loop = undefined;
      this.kick();
    });
  }

  private async publishLoop(): Promise<void> {
    // One turn of the event loop gathers the lines of the SSH data that came in together.
    await new Promise((resolve) => setImmediate(resolve));
    while (!this.held && this.waiting.length > 0) {
      let bytes = 0;
      let n = 0;
      for (const line of this.waiting) {
        const size = sizeOf(line);
        if (n > 0 && bytes + size > PUBLISH_BYTES) break;
        bytes += size;
        n++;
      }
      const batch = this.waiting.splice(0, n);
      try {
        await publish(this.deps, appLogsChannel(this.appId), appLogMessages(this.appId, batch));
        this.published += batch.length;
      } catch (err) {
        this.deps.logger.warn("app log publish failed", { appId: this.appId, error: err });
      }
      this.release(bytes);
    }
  }

  private release(bytes: number): void {
    this.bytes = Math.max(0, this.bytes - bytes);
    if (this.bytes > LOW_WATER_BYTES || this.waiters.length === 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}
