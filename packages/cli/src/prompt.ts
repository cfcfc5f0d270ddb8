import { createInterface } from "node:readline";
import { CliError } from "./errors.ts";

export const interactive = () => Boolean(process.stdin.isTTY && process.stderr.isTTY);

/** A question on stderr, the answer from the terminal. */
export function ask(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  return new Promise((resolve) => {
    // Ctrl-C at the question answers nothing (the default).
    rl.on("SIGINT", () => {
      rl.close();
      process.stderr.write("\n");
      resolve("");
    });
    rl.question(question, (answer) => {
      rl.close();
      resolve(answer.trim());
    });
  });
}

/** A secret typed without echo. */
export function askHidden(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  const out = rl as unknown as { _writeToOutput: (s: string) => void; output: NodeJS.WritableStream };
  let prompted = false;
  out._writeToOutput = (s: string) => {
    // The question itself is written once; what is typed is not echoed.
    if (!prompted) {
      prompted = true;
      process.stderr.write(s);
    }
  };
  return new Promise((resolve, reject) => {
    rl.on("SIGINT", () => {
      rl.close();
      process.stderr.write("\n");
      reject(new CliError("cancelled", 130));
    });
    rl.question(question, (answer) => {
      rl.close();
      process.stderr.write("\n");
      resolve(answer);
    });
  });
}

/** All of stdin (for `--password-stdin`), without its final newline. */
export async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw new CliError("--password-stdin reads stdin: pipe the password in", 2);
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
}
