import { createHash } from "node:crypto";
import { msOfTime, timeOfMs } from "./compose-logs.ts";
import type { TailCursor } from "./entity.ts";

/**
 * How far back a follow-up tail reads before the newest line published:
 * `docker compose logs -f` merges one stream per container as their lines
 * arrive, so a line of one container can reach us after a slightly newer
 * line of another. Within this window a line is matched against the
 * per-service cursor, not dropped for being older than the newest line.
 */
export const SEAM_WINDOW_MS = 5000;
/** Bounds on what a cursor carries (it travels in the lease item). */
const MAX_SEEN_PER_SERVICE = 200;
const MAX_SERVICES = 100;

/** A fingerprint of a (masked) line: the cursor never carries log text. */
export const fingerprint = (line: string): string => createHash("sha256").update(line).digest("base64url").slice(0, 16);

/**
 * The seam between two tail commands (two slices, or a command that ended and
 * is followed again): which lines read are new. The next command starts
 * `--since` a little before the newest line published — docker's `--since`
 * is inclusive — and for each service drops what is older than that
 * service's newest published time, and, at exactly that time, the lines
 * whose fingerprints were already published (as many times as they were).
 * So nothing is published twice and nothing after the cursor is skipped.
 */
export class TailSeam {
  private readonly services = new Map<string, { time: string; seen: string[]; skip: Map<string, number> }>();

  constructor(private readonly start: TailCursor) {
    for (const [service, s] of Object.entries(start.services)) {
      const skip = new Map<string, number>();
      for (const f of s.seen) skip.set(f, (skip.get(f) ?? 0) + 1);
      this.services.set(service, { time: s.time, seen: [...s.seen], skip });
    }
  }

  /** Whether the line is new; a new line counts as published from now on. */
  admit(service: string, time: string, line: string): boolean {
    if (time < this.start.since) return false;
    const s = this.services.get(service);
    if (s && time < s.time) return false;
    const f = fingerprint(line);
    if (s && time === s.time) {
      const left = s.skip.get(f) ?? 0;
      if (left > 0) {
        s.skip.set(f, left - 1);
        return false;
      }
      if (s.seen.length < MAX_SEEN_PER_SERVICE) s.seen.push(f);
      return true;
    }
    this.services.delete(service); // re-inserted last: the map stays ordered by last activity
    this.services.set(service, { time, seen: [f], skip: new Map() });
    return true;
  }

  /** The cursor the next command starts from. */
  cursor(): TailCursor {
    let newest: string | undefined;
    for (const s of this.services.values()) if (!newest || s.time > newest) newest = s.time;
    if (!newest) return { since: this.start.since, services: {} };
    const windowStart = timeOfMs(msOfTime(newest) - SEAM_WINDOW_MS);
    const since = [this.start.since, windowStart].sort()[1] as string; // the later of the two (times compare as strings)
    // A service whose newest line is older than `since` needs no entry: all its lines read from there are new.
    const kept = [...this.services.entries()].filter(([, s]) => s.time >= since).slice(-MAX_SERVICES);
    return { since, services: Object.fromEntries(kept.map(([name, s]) => [name, { time: s.time, seen: s.seen }])) };
  }
}
