/**
 * Structured JSON logs, one line per event. Values under keys that look like
 * secrets are replaced before anything is written.
 */
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";
const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };
const secretKey = /pass(word|phrase)?|secret|token|authorization|cookie|private.?key|credential/i;

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export function redact(value: unknown, depth = 0): unknown {
  if (depth > 4 || value === null || typeof value !== "object") return value;
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, secretKey.test(k) ? "[redacted]" : redact(v, depth + 1)]),
  );
}

export function createLogger(
  level: LogLevel = "info",
  write: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
): Logger {
  const log = (at: Exclude<LogLevel, "silent">) => (msg: string, fields?: Record<string, unknown>) => {
    if (order[at] < order[level]) return;
    write(JSON.stringify({ level: at, time: new Date().toISOString(), msg, ...(redact(fields ?? {}) as object) }));
  };
  return { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") };
}

/** A logger that adds `fields` to each of its lines (a request's id, say); a line's own fields win. */
export function withFields(logger: Logger, fields: Record<string, unknown>): Logger {
  const add =
    (log: Logger[keyof Logger]) =>
    (msg: string, more?: Record<string, unknown>): void =>
      log.call(logger, msg, { ...fields, ...more });
  return { debug: add(logger.debug), info: add(logger.info), warn: add(logger.warn), error: add(logger.error) };
}
