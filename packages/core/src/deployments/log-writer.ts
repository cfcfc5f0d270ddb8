import type { Deps } from "../ports.ts";
import { publishLines } from "../realtime/publish.ts";
import { cond } from "../store/store.ts";
import { deploymentKey, type LogItem, type LogLine, type LogStream, logKey } from "./entity.ts";

const FLUSH_LINES = 50;
const FLUSH_MS = 100;
const MIN_MASKED_LENGTH = 4;
export const MASK = "••••";

/** Replaces every env var value (of at least 4 characters) that appears in a line. */
export function masker(values: string[]): (line: string) => string {
  const secrets = [...new Set(values.filter((v) => v.length >= MIN_MASKED_LENGTH))].sort((a, b) => b.length - a.length);
  if (secrets.length === 0) return (line) => line;
  return (line) => secrets.reduce((out, secret) => (out.includes(secret) ? out.split(secret).join(MASK) : out), line);
}

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
  private chain: Promise<void> = Promise.resolve();
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
    if (this.pending.length >= FLUSH_LINES) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), FLUSH_MS);
  }

  /** Writes what is pending; flushes run one after another, so seq order holds in the table and on the wire. */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const lines = this.pending;
    this.pending = [];
    if (lines.length === 0) return this.chain;
    this.chain = this.chain
      .then(async () => {
        const items: LogItem[] = lines.map((l) => ({ ...logKey(this.deploymentId, l.seq), entity: "log-line", ...l }));
        await this.deps.store.batchPut(items);
        await this.deps.store
          .update(deploymentKey(this.deploymentId), {
            set: { logLines: lines.at(-1)?.seq ?? this.seq, logTruncated: this.truncated },
            condition: cond.exists(),
          })
          .catch(() => undefined);
        await publishLines(this.deps, this.deploymentId, lines);
      })
      .catch((err: unknown) =>
        this.deps.logger.error("deployment log write failed", { deploymentId: this.deploymentId, error: err }),
      );
    return this.chain;
  }
}
