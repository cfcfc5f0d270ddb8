import { describe, expect, it } from "vitest";
import { LINE_TRUNCATED_MARKER, LineSplitter } from "./ssh-lines.ts";

/** Feeds `bytes` to a splitter in chunks cut at `cuts` (byte offsets); answers the lines. */
function split(bytes: Buffer, cuts: number[], maxLineChars = 16): string[] {
  const lines: string[] = [];
  const splitter = new LineSplitter(maxLineChars, (l) => lines.push(l));
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    splitter.push(bytes.subarray(from, cut));
    from = cut;
  }
  splitter.end();
  return lines;
}

const everyCut = (length: number) => Array.from({ length: length - 1 }, (_, i) => i + 1);

describe("LineSplitter", () => {
  it("gives the same lines however the bytes are cut: CRLF, multi-byte characters, a last line without newline", () => {
    const text = "a\r\nbé\n\n☃🚀x\r\nlast";
    const bytes = Buffer.from(text);
    const expected = ["a", "bé", "", "☃🚀x", "last"];
    expect(split(bytes, [])).toEqual(expected);
    for (let cut = 1; cut < bytes.length; cut++) expect(split(bytes, [cut]), `cut at ${cut}`).toEqual(expected);
    expect(split(bytes, everyCut(bytes.length))).toEqual(expected);
  });

  it("cuts a line longer than maxLineChars (in characters, not bytes) and drops the rest of it", () => {
    const long = `${"é".repeat(20)}\nnext\n`; // 20 characters, 40 bytes
    for (const cuts of [[], [7], everyCut(Buffer.byteLength(long))])
      expect(split(Buffer.from(long), cuts)).toEqual([`${"é".repeat(16)}${LINE_TRUNCATED_MARKER}`, "next"]);
    // Exactly maxLineChars characters of 2-byte characters: more bytes than the limit, not cut.
    expect(split(Buffer.from(`${"é".repeat(16)}\n`), [5])).toEqual(["é".repeat(16)]);
  });

  it("cuts a line that never ends without holding all of it, then goes on after its newline", () => {
    const lines: string[] = [];
    const splitter = new LineSplitter(16, (l) => lines.push(l));
    for (let i = 0; i < 100; i++) splitter.push(Buffer.from("x".repeat(10)));
    expect(lines).toEqual([`${"x".repeat(16)}${LINE_TRUNCATED_MARKER}`]); // before its newline came
    splitter.push(Buffer.from("xx\r\nok\r\n"));
    splitter.end();
    expect(lines).toEqual([`${"x".repeat(16)}${LINE_TRUNCATED_MARKER}`, "ok"]);
  });

  it("decodes a line split inside a multi-byte character once, without replacement characters", () => {
    const bytes = Buffer.from("🚀🚀\n");
    expect(split(bytes, [1, 2, 3, 5, 6, 7])).toEqual(["🚀🚀"]);
  });

  it("counts bytes that are not UTF-8 as the replacement characters they become, cut or not", () => {
    const bytes = Buffer.concat([
      Buffer.from("abc"),
      Buffer.from([0xff]),
      Buffer.from("\nabcd"),
      Buffer.from([0xe2, 0x98]),
      Buffer.from("\n"),
    ]);
    for (const cuts of [[], [3], [4], everyCut(bytes.length)])
      expect(split(bytes, cuts, 4), `cuts ${cuts}`).toEqual(["abc\uFFFD", `abcd${LINE_TRUNCATED_MARKER}`]);
  });
});
