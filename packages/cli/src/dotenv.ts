import { CliError } from "./errors.ts";

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `KEY=VALUE` (the first `=` splits; the value may be empty). */
export function parseAssignment(text: string): [string, string] {
  const at = text.indexOf("=");
  const key = at < 0 ? text : text.slice(0, at);
  if (at < 0 || !KEY.test(key)) throw new CliError(`expected KEY=VALUE, got "${text}"`, 2);
  return [key, text.slice(at + 1)];
}

/**
 * A `.env` file: `KEY=VALUE` lines, `export ` prefixes, `#` comments, blank
 * lines, single-quoted values as they are, double-quoted ones with `\n` escapes;
 * an unquoted value ends at ` #`.
 */
export function parseDotenv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? "").trim();
    if (!line || line.startsWith("#")) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new CliError(`line ${i + 1} is not KEY=VALUE: ${line}`);
    const key = m[1] as string;
    let value = m[2] as string;
    const quote = value[0];
    if ((quote === '"' || quote === "'") && value.length >= 2 && value.endsWith(quote)) {
      value = value.slice(1, -1);
      if (quote === '"') value = value.replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
    } else {
      value = value.replace(/\s+#.*$/, "");
    }
    out[key] = value;
  }
  return out;
}
