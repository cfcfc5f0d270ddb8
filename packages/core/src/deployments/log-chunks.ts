import type { Deps } from "../ports.ts";
import type { Key } from "../store/store.ts";
import type { LogLine, LogStream } from "./entity.ts";

/**
 * A deployment's stored log: chunk items of many lines each, on the
 * deployment's partition. A chunk's sort key is the seq of its *last* line,
 * so the first chunk at or after `LOGC#<after + 1>` is the one holding the
 * line right after `after`: one Query reads forward from any seq.
 */
export type LogChunkItem = Key & {
  entity: "log-chunk";
  first: number;
  last: number;
  /** JSON `[[seq, ts, stream, line], …]`: one string attribute marshals far faster than a list of maps. */
  body: string;
  expiresAt: number;
};

/** A chunk's body stays well under DynamoDB's 400 KB item limit (a single line adds at most ~100 KB more). */
export const CHUNK_BYTES = 128 * 1024;
const SK_DIGITS = 10;
const chunkSk = (lastSeq: number) => `LOGC#${String(lastSeq).padStart(SK_DIGITS, "0")}`;
const LAST_SK = chunkSk(10 ** SK_DIGITS - 1);
const chunkPk = (deploymentId: string) => `DEP#${deploymentId}`;

/** One line as it sits in a chunk's body (without the brackets and commas around it). */
export const encodeLine = (l: LogLine) => JSON.stringify([l.seq, l.ts, l.stream, l.line]);

export function chunkItem(deploymentId: string, lines: LogLine[], encoded: string[], retentionDays: number) {
  const first = lines[0]?.seq ?? 0;
  const last = lines.at(-1)?.seq ?? 0;
  const item: LogChunkItem = {
    pk: chunkPk(deploymentId),
    sk: chunkSk(last),
    entity: "log-chunk",
    first,
    last,
    body: `[${encoded.join(",")}]`,
    expiresAt: Math.floor(Date.now() / 1000) + retentionDays * 86_400,
  };
  return item;
}

function decode(chunk: LogChunkItem): LogLine[] {
  return (JSON.parse(chunk.body) as [number, number, LogStream, string][]).map(([seq, ts, stream, line]) => ({
    seq,
    ts,
    stream,
    line,
  }));
}

/**
 * Up to `limit` stored lines after `after`, in seq order (consistent reads:
 * a chunk is readable as soon as its write returned). `more` says whether
 * stored lines remain past the last one returned.
 */
export async function storedLines(
  deps: Pick<Deps, "store">,
  deploymentId: string,
  after: number,
  limit: number,
  through = Number.POSITIVE_INFINITY,
): Promise<{ lines: LogLine[]; more: boolean }> {
  const lines: LogLine[] = [];
  let cursor: string | null = null;
  // Chunks hold from one to thousands of lines: read few at first, more while more are wanted.
  for (let chunks = 2; ; chunks = Math.min(chunks * 2, 32)) {
    const page: { items: LogChunkItem[]; nextCursor: string | null } = await deps.store.query<LogChunkItem>({
      pk: chunkPk(deploymentId),
      sk: { between: [chunkSk(after + 1), LAST_SK] },
      limit: chunks,
      consistent: true,
      cursor,
    });
    for (const chunk of page.items) {
      for (const line of decode(chunk)) {
        if (line.seq <= after) continue;
        if (line.seq > through) return { lines, more: false };
        if (lines.length === limit) return { lines, more: true };
        lines.push(line);
      }
    }
    cursor = page.nextCursor;
    if (!cursor) return { lines, more: false };
  }
}
