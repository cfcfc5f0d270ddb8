import { type Command, InvalidArgumentError } from "commander";
import { type GlobalOptions, openSession, type Session } from "../session.ts";

/** The exit code a command chose (deploy --follow: the deployment's result); errors choose theirs in main. */
export const exit = { code: 0 };

export const globalsOf = (cmd: Command): GlobalOptions => cmd.optsWithGlobals<GlobalOptions>();

/** The session a command runs with, and whether it prints JSON. */
export async function sessionOf(cmd: Command): Promise<{ s: Session; json: boolean }> {
  const g = globalsOf(cmd);
  const s = await openSession(g);
  return { s, json: Boolean(g.json) };
}

/** `--help` ends with these. */
export const examples = (...lines: string[]) => `\nExamples:\n${lines.map((l) => `  $ ${l}`).join("\n")}\n`;

export const int = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a whole number, got "${value}"`);
  return n;
};
