/** Env var values in command output: what Hoist stores or shows of a command never carries them. */
const MIN_MASKED_LENGTH = 4;
export const MASK = "••••";

/**
 * Replaces every env var value (of at least 4 characters) that appears in a
 * line. Output arrives line by line, so a multi-line value (a PEM key, JSON)
 * is masked line by line: each of its lines is a secret of its own.
 */
export function masker(values: string[]): (line: string) => string {
  const pieces = values.flatMap((v) => v.split(/\r?\n/)).map((v) => v.trim());
  const secrets = [...new Set(pieces.filter((v) => v.length >= MIN_MASKED_LENGTH))].sort((a, b) => b.length - a.length);
  if (secrets.length === 0) return (line) => line;
  return (line) => secrets.reduce((out, secret) => (out.includes(secret) ? out.split(secret).join(MASK) : out), line);
}
