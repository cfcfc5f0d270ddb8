import type { Deps } from "../ports.ts";
import { publishLines } from "../realtime/publish.ts";
import { cond } from "../store/store.ts";
import { deploymentKey, type LogItem, type LogLine, type LogStream, logKey } from "./entity.ts";

const FLUSH_LINES = 50;
/** One batch: 20 BatchWriteItem requests, and a few WebSocket messages. */
const MAX_BATCH_LINES = 500;
const FLUSH_MS = 100;
/**
 * A deployment's log: lines get consecutive `seq`s, are masked, written in
 * batches (BatchWriteItem) and published to `deployment:<id>` subscribers in
 * the same order. Past `maxLines` one system line says the log was truncated
 * and later lines are counted, not stored.
 */
export class LogWriter {
  private seq: number;
  private pending: LogLine[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** The one writer loop, while it runs: lines that arrive meanwhile join its next batch. */
  private pumping: Promise<void> | undefined;
  private truncated = false;
  dropped = 0;

  constructor(
    private readonly deps: Deps,
    private readonly deploymentId: string,
    private readonly mask: (line: string) => string,
    private readonly maxLines: number,
    startSeq = 0,
  ) {
    this.seq = startSeq;
  }

  write(stream: LogStream, text: string): void {
    if (this.truncated) {
      this.dropped++;
      return;
    }
    if (this.seq >= this.maxLines - 1) {
      this.truncated = true;
      this.push(
        "system",
        `[log truncated: only the first ${this.maxLines - 1} lines are kept; later output is not stored]`,
      );
      return;
    }
    this.push(stream, stream === "system" ? text : this.mask(text));
  }

  private push(stream: LogStream, line: string): void {
    this.pending.push({ seq: ++this.seq, ts: Date.now(), stream, line });
    if (this.pumping) return; // the running batch's loop takes it next
    if (this.pending.length >= FLUSH_LINES) this.kick();
    else this.timer ??= setTimeout(() => this.kick(), FLUSH_MS);
  }

  private kick(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pumping ??= this.pump().finally(() => {
      this.pumping = undefined;
    });
  }

  /**
   * Writes pending lines batch after batch until none are left. One loop at a
   * time keeps seq order in the table and on the wire; lines that arrive while
   * a batch is being written go out together in the next one.
   */
  private async pump(): Promise<void> {
    while (this.pending.length > 0) {
      const lines = this.pending.splice(0, MAX_BATCH_LINES);
      try {
        const items: LogItem[] = lines.map((l) => ({ ...logKey(this.deploymentId, l.seq), entity: "log-line", ...l }));
        await this.deps.store.batchPut(items);
        await this.deps.store
          .update(deploymentKey(this.deploymentId), {
            set: { logLines: lines.at(-1)?.seq ?? this.seq, logTruncated: this.truncated },
            condition: cond.exists(),
          })
          .catch(() => undefined);
        await publishLines(this.deps, this.deploymentId, lines);
      } catch (err) {
        this.deps.logger.error("deployment log write failed", { deploymentId: this.deploymentId, error: err });
      }
    }
  }

  /** Writes everything still pending (at the end of a run). */
  async flush(): Promise<void> {
    while (this.pending.length > 0 || this.pumping) {
      this.kick();
      await this.pumping;
    }
  }
}
