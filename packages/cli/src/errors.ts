import { HoistApiError } from "@hoist/client";

/** A problem the CLI reports as it is: `error: <message>`, then exit with `exitCode`. */
export class CliError extends Error {
  override name = "CliError";
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** Hoist could not be reached at all (refused, DNS, TLS): not a problem answer. */
export class UnreachableError extends CliError {
  override name = "UnreachableError";
  constructor(url: string, cause: unknown) {
    super(`cannot reach Hoist at ${url}: ${causeText(cause)}`);
  }
}

type Cause = { code?: string; message?: string; errors?: Cause[] };

/** undici's reason (`ECONNREFUSED`, `ENOTFOUND`, `bad port`; the first of several addresses tried). */
function causeText(err: unknown): string {
  const cause = (err as { cause?: Cause }).cause;
  const first = cause?.errors?.[0];
  return (
    cause?.code ??
    first?.code ??
    (cause?.message || first?.message) ??
    (err instanceof Error ? err.message : String(err))
  );
}

/** The lines to print for an error: a problem's title and detail and its field errors; a stack only with HOIST_DEBUG=1. */
export function describeError(err: unknown, debug = process.env.HOIST_DEBUG === "1"): string[] {
  const lines: string[] = [];
  if (err instanceof HoistApiError) {
    lines.push(`error: ${err.title}: ${err.detail}`);
    for (const e of err.errors) lines.push(`  ${e.path}: ${e.message}`);
    if (err.status === 401) lines.push("  (run `hoist login`, or set HOIST_TOKEN)");
  } else if (err instanceof CliError) {
    lines.push(`error: ${err.message}`);
  } else {
    lines.push(`error: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (debug && err instanceof Error && err.stack) lines.push(err.stack);
  return lines;
}
