import { describe, expect, it } from "vitest";
import { composeLogsCommand, normalizeTime, parseComposeLine, timeOfMs } from "./compose-logs.ts";
import { TailSeam } from "./tail-seam.ts";

describe("compose log lines", () => {
  it("parses service, time (normalized to nine digits, UTC) and text", () => {
    expect(parseComposeLine("web-1  | 2025-01-02T03:04:05.123456789Z hello | world")).toEqual({
      service: "web-1",
      time: "2025-01-02T03:04:05.123456789Z",
      ts: Date.parse("2025-01-02T03:04:05.123Z"),
      line: "hello | world",
    });
    expect(parseComposeLine("db-1 | 2025-01-02T03:04:05.5+01:00 x")?.time).toBe("2025-01-02T02:04:05.500000000Z");
    expect(parseComposeLine("web-1  | 2025-01-02T03:04:05Z")?.line).toBe("");
    expect(parseComposeLine("web-1 exited with code 0")).toBeUndefined();
    expect(parseComposeLine("web-1  | not-a-time text")).toBeUndefined();
    expect(normalizeTime("2025-13-02T03:04:05Z")).toBeUndefined();
  });

  it("builds the command with a normalized --since only", () => {
    expect(composeLogsCommand({ follow: true, since: timeOfMs(0) })).toBe(
      "docker compose logs --timestamps --no-color --follow --since 1970-01-01T00:00:00.000000000Z",
    );
    expect(() => composeLogsCommand({ since: "0; rm -rf /" })).toThrow();
  });
});

describe("the seam between two tail commands", () => {
  const T = (s: number, n = 0) => `2025-01-01T00:00:${String(s).padStart(2, "0")}.${String(n).padStart(9, "0")}Z`;

  it("skips what the previous command published, at the same time by fingerprint, and nothing else", () => {
    const a = new TailSeam({ since: T(0), services: {} });
    for (const [svc, t, line] of [
      ["web-1", T(10), "w1"],
      ["web-1", T(11), "w2"],
      ["web-1", T(11), "dup"],
      ["db-1", T(9), "d1"], // a slightly older line of another container, arriving late
    ] as const)
      expect(a.admit(svc, t, line)).toBe(true);
    const cursor = a.cursor();
    expect(cursor.since).toBe(T(6)); // 5 s before the newest line

    const b = new TailSeam(cursor);
    // Re-read from `since`: all of the above again, then new lines, among them one more "dup" at the same time.
    const reread: [string, string, string, boolean][] = [
      ["db-1", T(9), "d1", false],
      ["web-1", T(10), "w1", false],
      ["web-1", T(11), "w2", false],
      ["web-1", T(11), "dup", false],
      ["web-1", T(11), "dup", true], // the same text again at the same time: a new line
      ["db-1", T(9, 1), "d2", true],
      ["api-1", T(7), "a1", true], // a container the previous command never saw
      ["web-1", T(12), "w3", true],
    ];
    for (const [svc, t, line, fresh] of reread) expect(b.admit(svc, t, line), `${svc} ${t} ${line}`).toBe(fresh);
  });
});
