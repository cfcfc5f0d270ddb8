import { StringDecoder } from "node:string_decoder";

export const LINE_TRUNCATED_MARKER = " [… line truncated by Hoist]";

const LF = 0x0a;
const CR = 0x0d;

/**
 * Splits a byte stream into UTF-8 lines: `\n` or `\r\n`, chunks split anywhere, long lines cut.
 *
 * Split on bytes, decoded once per line: `\n` is never part of a multi-byte
 * character, so a line's bytes decode alone. Each line is a string of its own
 * size, not a slice of the whole chunk's decoded text, which a held line would
 * keep alive (SSH delivers 32 KB at a time), and no chunk is decoded whole.
 */
export class LineSplitter {
  /** The current line's bytes so far: views of the pushed chunks, copied once when the line ends. */
  private parts: Buffer[] = [];
  private partBytes = 0;
  private dropping = false;

  constructor(
    private readonly maxLineChars: number,
    private readonly emit: (line: string) => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (let nl = chunk.indexOf(LF); nl !== -1; nl = chunk.indexOf(LF, start)) {
      this.append(chunk.subarray(start, nl));
      this.flush();
      start = nl + 1;
    }
    this.append(chunk.subarray(start));
  }

  /** Flushes the last line when the output does not end with a newline. */
  end(): void {
    if (this.partBytes > 0) this.flush();
    this.dropping = false;
  }

  private append(bytes: Buffer): void {
    if (this.dropping || bytes.length === 0) return;
    this.parts.push(bytes);
    this.partBytes += bytes.length;
    // A line has at most as many characters as bytes: only past maxLineChars bytes can it be too long.
    if (this.partBytes <= this.maxLineChars) return;
    // Decoded without a multi-byte character still cut off at the end (StringDecoder keeps it back).
    const text = new StringDecoder("utf8").write(this.bytes());
    if (text.length <= this.maxLineChars) return;
    this.emit(this.cut(text));
    this.clear();
    this.dropping = true;
  }

  private flush(): void {
    if (this.dropping) {
      this.dropping = false;
      return;
    }
    const bytes = this.bytes();
    const end = bytes.length > 0 && bytes[bytes.length - 1] === CR ? bytes.length - 1 : bytes.length;
    this.clear();
    const line = bytes.toString("utf8", 0, end);
    // Bytes that end the line mid-character decode as replacement characters only now: they count too.
    this.emit(line.length > this.maxLineChars ? this.cut(line) : line);
  }

  private cut(text: string): string {
    return text.slice(0, this.maxLineChars) + LINE_TRUNCATED_MARKER;
  }

  /** The line so far as one buffer (joined, and kept joined, only when it came in more than one chunk). */
  private bytes(): Buffer {
    if (this.parts.length > 1) this.parts = [Buffer.concat(this.parts, this.partBytes)];
    return this.parts[0] ?? Buffer.alloc(0);
  }

  private clear(): void {
    this.parts = [];
    this.partBytes = 0;
  }
}
