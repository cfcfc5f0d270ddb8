import type { Deps } from "../ports.ts";
import { fanOutLog, type LogSeam } from "../realtime/log-fanout.ts";
import { cond } from "../store/store.ts";
import { deploymentKey, type LogLine, type LogStream } from "./entity.ts";
import { CHUNK_BYTES, chunkItem, encodeLine } from "./log-chunks.ts";

/**
 * A line in flight: counted in memory until it is both published and (if
 * kept) stored. It is published as it is: JSON sees the LogLine fields only,
 * the bookkeeping is private.
 *
 * A class, not an object literal: V8 pretenures a literal's allocation site
 * once nearly all of its objects outlive a scavenge, as held lines do while
 * the channel waits, and a pretenured line, dead in old space, keeps its
 * young string alive until a full GC. Every line was then promoted (old
 * space +100 MB while a command printed 400 MB in lines of 16 KB). Objects
 * made with `new` have no allocation site.
 */
class Entry implements LogLine {
  readonly #bytes: number;
  /** Tracks still to be done with it: publish, and store if kept. */
  #holders: number;
  /** The line as stored (log-chunks.ts), made once. */
  #json: string | undefined;
  #jsonBytes = 0;

  constructor(
    readonly seq: number,
    readonly ts: number,
    readonly stream: LogStream,
    readonly line: string,
    bytes: number,
    kept: boolean,
  ) {
    this.#bytes = bytes;
    this.#holders = kept ? 2 : 1;
  }

  /** The line's UTF-8 size. */
  get bytes(): number {
    return this.#bytes;
  }

  /** One track is done with it; true once both are. */
  release(): boolean {
    return --this.#holders === 0;
  }

  /** The line as stored in a chunk's body. */
  get json(): string {
    return this.#json ?? this.#encode();
  }

  get jsonBytes(): number {
    if (this.#json === undefined) this.#encode();
    return this.#jsonBytes;
  }

  #encode(): string {
    const json = encodeLine(this);
    this.#json = json;
    this.#jsonBytes = Buffer.byteLength(json);
    return json;
  }
}

/**
 * Past this many bytes held in memory the command's output is paused
 * (backpressure) … Kept small: a held line must die in V8's young generation
 * (one scavenge is ~16 MB of allocation, ~3 bytes per byte of output). With
 * 4 MiB most lines of a fast command lived through two scavenges, were
 * promoted, and piled up in old space as garbage (+150 MB RSS for 400 MB of
 * output); the SSH channel's own 2 MB window keeps the pipe full meanwhile.
 */
const HIGH_WATER_BYTES = 1024 * 1024;
/** … and resumed once the backlog is down to this. */
const LOW_WATER_BYTES = 256 * 1024;
/** One fan-out carries at most this much; lines that arrive meanwhile go in the next. */
const PUBLISH_BYTES = 256 * 1024;
/** A chunk closes at this many lines even when they are short. */
const CHUNK_LINES = 4000;
const MAX_RETRY_MS = 5000;
/** How often a quiet command's new subscribers are taken over (see fanOutLog). */
const ADOPT_MS = 250;

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/**
 * A deployment's log, on two tracks that never wait for each other: lines go
 * to `deployment:<id>` subscribers as soon as they are read (micro-batched:
 * whatever arrived while the previous fan-out was out), and into chunk items
 * (log-chunks.ts) as fast as DynamoDB takes them, a failed write retried
 * until it lands. Lines get consecutive `seq`s and are masked first.
 *
 * Memory is bounded: while more than {@link HIGH_WATER_BYTES} are held,
 * `full()` says so and the SSH channel is paused until `drained()`. Stored
 * bytes are capped (`HOIST_DEPLOY_LOG_MAX_BYTES`): a marker line says where
 * the stored log stops, the live stream goes on, system lines are always
 * kept, and the last line counts what was streamed but not stored.
 */
export class LogWriter implements LogSeam {
  private seq = 0;
  private readonly toPublish: Entry[] = [];
  private readonly toStore: Entry[] = [];
  private held = 0;
  private storedBytes = 0;
  /** Every kept line up to here is in the table. */
  private storedUpTo = 0;
  private capped = false;
  private readonly notStored = { lines: 0, bytes: 0 };
  private publishing: Promise<void> | undefined;
  private storing: Promise<void> | undefined;
  private waiters: (() => void)[] = [];
  private publishedUpTo = 0;
  private closed = false;
  private readonly adopting = setInterval(() => this.adopt(), ADOPT_MS).unref();
  readonly live = new Map<string, number | undefined>();

  constructor(
    private readonly deps: Deps,
    private readonly deploymentId: string,
    private readonly mask: (line: string) => string,
    private readonly limits: { maxBytes: number; retentionDays: number } = {
      maxBytes: deps.config.deploy.logMaxBytes,
      retentionDays: deps.config.deploy.logRetentionDays,
    },
  ) {}

  write(stream: LogStream, text: string): void {
    const line = stream === "system" ? text : this.mask(text);
    const bytes = Buffer.byteLength(line);
    if (stream !== "system" && !this.capped && this.storedBytes + bytes > this.limits.maxBytes) {
      this.capped = true;
      this.push(
        "system",
        `[log truncated: the stored log stops here at ${mib(this.storedBytes)} (HOIST_DEPLOY_LOG_MAX_BYTES); later output is streamed live but not stored]`,
        true,
      );
    }
    const kept = stream === "system" || !this.capped;
    if (!kept) {
      this.notStored.lines++;
      this.notStored.bytes += bytes;
    }
    this.push(stream, line, kept, bytes);
  }

  /** Bytes of lines read but not yet both published and stored. */
  get heldBytes(): number {
    return this.held;
  }

  /** Backpressure for the SSH channel (ExecOptions.flow). */
  full(): boolean {
    return this.held > HIGH_WATER_BYTES;
  }

  drained(): Promise<void> {
    if (this.held <= LOW_WATER_BYTES) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  storedThrough(): number {
    return this.storedUpTo;
  }

  unstored(after: number, before: number): LogLine[] {
    return this.toStore.filter((e) => e.seq > after && e.seq < before);
  }

  /** Publishes and stores everything still held, says what was not stored, and records the totals. */
  async close(): Promise<void> {
    if (this.notStored.lines > 0)
      this.write(
        "system",
        `[${this.notStored.lines} lines (${mib(this.notStored.bytes)}) past the stored-log cap were streamed live but not stored]`,
      );
    this.closed = true;
    clearInterval(this.adopting);
    while (this.publishing || this.storing) await Promise.all([this.publishing, this.storing]);
    await this.deps.store
      .update(deploymentKey(this.deploymentId), {
        set: { logLines: this.seq, logTruncated: this.capped },
        condition: cond.exists(),
      })
      .catch((err: unknown) => this.deps.logger.warn("deploy log totals not recorded", { error: err }));
  }

  private push(stream: LogStream, line: string, kept: boolean, bytes = Buffer.byteLength(line)): void {
    const entry = new Entry(++this.seq, Date.now(), stream, line, bytes, kept);
    this.held += bytes;
    this.toPublish.push(entry);
    this.kickPublisher();
    if (!kept) return;
    this.storedBytes += bytes;
    this.toStore.push(entry);
    this.storing ??= this.storeLoop().finally(() => {
      this.storing = undefined;
    });
  }

  private release(entries: Entry[]): void {
    for (const e of entries) if (e.release()) this.held -= e.bytes;
    if (this.held > LOW_WATER_BYTES || this.waiters.length === 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** While the command is quiet, subscribers that finished their replay are taken over without waiting for a line. */
  private adopt(): void {
    if (this.publishing || this.closed) return;
    this.publishing = this.fanOut([]).finally(() => {
      this.publishing = undefined;
      if (this.toPublish.length > 0) this.kickPublisher();
    });
  }

  private kickPublisher(): void {
    this.publishing ??= this.publishLoop().finally(() => {
      this.publishing = undefined;
    });
  }

  private async publishLoop(): Promise<void> {
    // One turn of the event loop gathers the lines of the SSH data that came in together.
    await new Promise((resolve) => setImmediate(resolve));
    while (this.toPublish.length > 0) {
      const batch = takeBytes(this.toPublish, PUBLISH_BYTES, Number.POSITIVE_INFINITY, (e) => e.bytes);
      this.toPublish.splice(0, batch.length);
      await this.fanOut(batch);
      this.release(batch);
    }
  }

  private async fanOut(batch: Entry[]): Promise<void> {
    try {
      await fanOutLog(this.deps, this.deploymentId, batch, this, this.publishedUpTo);
    } catch (err) {
      this.deps.logger.warn("deploy log publish failed", { deploymentId: this.deploymentId, error: err });
    }
    this.publishedUpTo = batch.at(-1)?.seq ?? this.publishedUpTo;
  }

  private async storeLoop(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    while (this.toStore.length > 0) {
      const lines = takeBytes(this.toStore, CHUNK_BYTES, CHUNK_LINES, (e) => e.jsonBytes + 1);
      const encoded = lines.map((e) => e.json);
      const item = chunkItem(this.deploymentId, lines, encoded, this.limits.retentionDays);
      for (let attempt = 0; ; attempt++) {
        try {
          await this.deps.store.put(item);
          break;
        } catch (err) {
          this.deps.logger.warn("deploy log chunk write failed; retrying", {
            deploymentId: this.deploymentId,
            attempt,
            error: err,
          });
          await new Promise((r) => setTimeout(r, Math.min(MAX_RETRY_MS, 100 * 2 ** attempt)));
        }
      }
      // Only now do the lines leave toStore: unstored() must never miss a line between memory and table.
      this.toStore.splice(0, lines.length);
      this.storedUpTo = item.last;
      this.release(lines);
    }
  }
}

/** The first entries of `queue` within `maxBytes` (at least one) and `maxLines`; the queue is left as it is. */
function takeBytes(queue: Entry[], maxBytes: number, maxLines: number, sizeOf: (e: Entry) => number): Entry[] {
  let bytes = 0;
  let n = 0;
  for (const e of queue) {
    const size = sizeOf(e);
    if (n > 0 && (bytes + size > maxBytes || n >= maxLines)) break;
    bytes += size;
    n++;
  }
  return queue.slice(0, n);
}
