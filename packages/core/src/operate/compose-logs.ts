/**
 * `docker compose logs --timestamps --no-color` output: each line is the
 * container's name padded, ` | `, the time docker received the line
 * (RFC 3339 with nanoseconds), a space, and the line:
 * `web-1  | 2025-01-02T03:04:05.123456789Z listening on :80`.
 */

export interface AppLogLine {
  /** Epoch ms (API.md's time convention). */
  ts: number;
  /** The exact time, RFC 3339 UTC with nine fractional digits: the order key, and a precise `since`. */
  time: string;
  /** The container (`web-1`), as compose names it. */
  service: string;
  line: string;
}

const LINE = /^(\S+?) *\| (\S+)(?: (.*))?$/;
const TIME = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/;

/**
 * A time as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (UTC, nine digits), so times
 * compare as strings; undefined if it is not RFC 3339. Docker trims trailing
 * zeros in some outputs and not in others: this is why times are normalized.
 */
export function normalizeTime(text: string): string | undefined {
  const m = TIME.exec(text);
  if (!m) return undefined;
  const seconds = Date.parse(`${m[1]}${m[3]}`);
  if (!Number.isFinite(seconds)) return undefined;
  return `${new Date(seconds).toISOString().slice(0, 19)}.${(m[2] ?? "").padEnd(9, "0")}Z`;
}

/** Epoch ms as a normalized time (what `--since` is given). */
export const timeOfMs = (ms: number): string => `${new Date(ms).toISOString().slice(0, 23)}000000Z`;

/** A normalized time as epoch ms (sub-millisecond digits dropped). */
export const msOfTime = (time: string): number => Date.parse(`${time.slice(0, 23)}Z`);

/** One output line, parsed; undefined for anything else compose prints (`web-1 exited with code 0`). */
export function parseComposeLine(raw: string): AppLogLine | undefined {
  const m = LINE.exec(raw);
  if (!m) return undefined;
  const time = normalizeTime(m[2] as string);
  if (!time) return undefined;
  return { ts: msOfTime(time), time, service: m[1] as string, line: m[3] ?? "" };
}

/** `docker compose logs` with timestamps, no colours, and the given window; `follow` keeps it open. */
export function composeLogsCommand(opts: { since?: string; tail?: number; follow?: boolean }): string {
  const args = ["docker compose logs --timestamps --no-color"];
  if (opts.follow) args.push("--follow");
  if (opts.tail !== undefined) args.push(`--tail ${Math.max(0, Math.floor(opts.tail))}`);
  if (opts.since !== undefined) {
    // Only a normalized time reaches the script (its characters need no quoting).
    if (normalizeTime(opts.since) !== opts.since) throw new Error(`Not a normalized time: ${opts.since}`);
    args.push(`--since ${opts.since}`);
  }
  return args.join(" ");
}

/** A failed `docker compose logs`' last stderr lines (the executor keeps them), masked, for its error message. */
export const lastErrors = (stderrTail: string[], mask: (line: string) => string) =>
  stderrTail.slice(-5).map(mask).join(" / ");
