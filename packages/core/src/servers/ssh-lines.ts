import { StringDecoder } from "node:string_decoder";

export const LINE_TRUNCATED_MARKER = " [… line truncated by Hoist]";

/** Splits a byte stream into UTF-8 lines: `\n` or `\r\n`, chunks split anywhere, long lines cut. */
export class LineSplitter {
  private readonly decoder = new StringDecoder("utf8");
  private partial = "";
  private dropping = false;

  constructor(
    private readonly maxLineChars: number,
    private readonly emit: (line: string) => void,
  ) {}

  push(chunk: Buffer): void {
    this.feed(this.decoder.write(chunk));
  }

  /** Flushes the last line when the output does not end with a newline. */
  end(): void {
    this.feed(this.decoder.end());
    if (this.partial !== "") this.flush();
    this.dropping = false;
  }

  private feed(text: string): void {
    let start = 0;
    for (let nl = text.indexOf("\n"); nl !== -1; nl = text.indexOf("\n", start)) {
      this.append(text.slice(start, nl));
      this.flush();
      start = nl + 1;
    }
    this.append(text.slice(start));
  }

  private append(text: string): void {
    if (this.dropping || text === "") return;
    this.partial += text;
    if (this.partial.length > this.maxLineChars) {
      this.emit(this.partial.slice(0, this.maxLineChars) + LINE_TRUNCATED_MARKER);
      this.partial = "";
      this.dropping = true;
    }
  }

  private flush(): void {
    const line = this.partial.endsWith("\r") ? this.partial.slice(0, -1) : this.partial;
    this.partial = "";
    if (this.dropping) this.dropping = false;
    else this.emit(line);
  }
}
