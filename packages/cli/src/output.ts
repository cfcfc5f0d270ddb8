/** Printing: JSON for scripts (`--json`), aligned text for people. */

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** One compact JSON object per line (streams: `deploy --follow --json`). */
export function printJsonLine(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

export function printLines(...lines: string[]): void {
  for (const line of lines) process.stdout.write(`${line}\n`);
}

/** Progress and notes go to stderr, so stdout holds only the data (or the command's output). */
export function note(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** Columns padded to their widest cell; `rows` without a header print "(none)". */
export function printTable(header: string[], rows: (string | number | null | undefined)[][]): void {
  if (rows.length === 0) {
    printLines("(none)");
    return;
  }
  const cells = [
    header,
    ...rows.map((r) => r.map((c) => (c === null || c === undefined || c === "" ? "-" : String(c)))),
  ];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  for (const row of cells)
    printLines(row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  "));
}

/** `3 min ago`, `in 12 min`; `-` for null. */
export function relative(at: number | null | undefined, now = Date.now()): string {
  if (!at) return "-";
  const s = Math.round((at - now) / 1000);
  const abs = Math.abs(s);
  const text =
    abs < 60
      ? `${abs} s`
      : abs < 3600
        ? `${Math.round(abs / 60)} min`
        : abs < 86400
          ? `${Math.round(abs / 3600)} h`
          : `${Math.round(abs / 86400)} d`;
  return s >= 0 ? `in ${text}` : `${text} ago`;
}
