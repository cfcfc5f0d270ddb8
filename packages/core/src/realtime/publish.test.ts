import { describe, expect, it } from "vitest";
import type { LogLine } from "../deployments/entity.ts";
import { jsonBytes, logMessages, MAX_MESSAGE_BYTES } from "./publish.ts";

describe("jsonBytes", () => {
  it("is the UTF-8 size of the JSON string, escapes and lone surrogates included", () => {
    const texts = [
      "",
      "plain",
      'a "quoted" \\ path',
      "tab\tnew\nline\u0000\u001f",
      "é € 😀",
      "\ud800",
      "x\udfffy",
      "\u007f\u2028",
    ];
    for (const text of texts) expect(jsonBytes(text), text).toBe(Buffer.byteLength(JSON.stringify(text)));
  });
});

describe("logMessages", () => {
  it("keeps every message within one frame, lines in order", () => {
    const line = (seq: number, text: string): LogLine => ({ seq, ts: 0, stream: "stdout", line: text });
    const lines = [
      line(1, "x".repeat(16_000)),
      line(2, "\u0001".repeat(3000)),
      line(3, "y".repeat(16_000)),
      line(4, "z"),
    ];
    const messages = logMessages("dep", lines);
    for (const m of messages) expect(Buffer.byteLength(JSON.stringify(m))).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    expect(messages.flatMap((m) => m.lines.map((l) => l.seq))).toEqual([1, 2, 3, 4]);
  });
});
