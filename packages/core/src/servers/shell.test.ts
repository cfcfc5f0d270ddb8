import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ValidationError } from "../errors.ts";
import {
  buildScript,
  CWD_MISSING_EXIT,
  CWD_MISSING_MARKER,
  envAssignments,
  quote,
  quotePath,
  writeFileScript,
} from "./shell.ts";

/** Strings a user might type, or an attacker might try. */
const NASTY = [
  "",
  "plain",
  "it's",
  "''",
  "a b  c",
  "line1\nline2\n",
  "$(touch pwned)",
  "`touch pwned`",
  "; touch pwned; #",
  "&& touch pwned || true",
  '"double" \\back\\slash\\',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal shell expansion, on purpose
  "$HOME ${HOME} $1 $@ $$ ~ *",
  "-n",
  "ünïcödé ☃ 🚀",
  "\t\r\n",
];

const tempDirs: string[] = [];
afterAll(() => Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true }))));

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "hoist-shell-"));
  tempDirs.push(dir);
  return dir;
}

/** Runs a script under /bin/sh, as sshd would, in `cwd`. */
function sh(script: string, opts: { cwd?: string; input?: string; env?: Record<string, string> } = {}) {
  const res = spawnSync("/bin/sh", ["-c", script], {
    cwd: opts.cwd,
    input: opts.input ?? "",
    env: { PATH: process.env.PATH, HOME: opts.cwd ?? tmpdir(), ...opts.env },
    encoding: "utf8",
  });
  return { status: res.status, stdout: res.stdout, stderr: res.stderr };
}

async function listAll(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String);
}

describe("quote", () => {
  it("single-quotes, escaping single quotes", () => {
    expect(quote("plain")).toBe("'plain'");
    expect(quote("")).toBe("''");
    expect(quote("it's")).toBe("'it'\\''s'");
  });

  it.each(NASTY.map((s) => [s]))("passes %j through the shell literally", async (value) => {
    const dir = await tempDir();
    const { stdout, status } = sh(`printf '%s' ${quote(value)}`, { cwd: dir });
    expect(status).toBe(0);
    expect(stdout).toBe(value);
    expect(await readdir(dir)).toEqual([]);
  });

  it("rejects NUL, which no shell argument can hold", () => {
    expect(() => quote("a\0b")).toThrow(ValidationError);
  });

  it("makes ~ and ~/ relative to $HOME and quotes the rest", () => {
    expect(quotePath("~")).toBe('"$HOME"');
    expect(quotePath("~/my app")).toBe(`"$HOME"/'my app'`);
    expect(quotePath("~other/x")).toBe("'~other/x'");
    expect(sh(`printf '%s' ${quotePath("~/a b")}`, { env: { HOME: "/home/x y" } }).stdout).toBe("/home/x y/a b");
  });
});

describe("envAssignments", () => {
  it("exports each variable, quoted, in order", () => {
    expect(envAssignments({ A: "1", _b2: "it's" })).toEqual(["export A='1'", "export _b2='it'\\''s'"]);
  });

  it.each(["", "1A", "A-B", "A B", "A=B", "$(touch pwned)", "A;B", "ä"])("rejects the name %j", (name) => {
    expect(() => envAssignments({ [name]: "x" })).toThrow(ValidationError);
  });
});

describe("buildScript", () => {
  it("runs the command in cwd with env, values arriving literally and nothing injected", async () => {
    const root = await tempDir();
    const cwd = join(root, "app $(touch pwned) `touch pwned` ; 'q' \"d\"\nnl");
    await mkdir(cwd);
    const env = Object.fromEntries(NASTY.map((v, i) => [`V${i}`, v]));
    const command = NASTY.map((_, i) => `printf '%s\\0' "$V${i}"`).join("; ");
    const res = sh(buildScript({ cwd, env, command: `${command}; printf '%s' "$PWD" > ../pwd.out` }), { cwd: root });
    expect(res.status).toBe(0);
    expect(res.stdout.split("\0").slice(0, -1)).toEqual(NASTY);
    expect(await readFile(join(root, "pwd.out"), "utf8")).toBe(cwd);
    expect((await listAll(root)).filter((f) => f.includes("pwned") && !f.startsWith("app "))).toEqual([]);
    expect(await readdir(cwd)).toEqual([]);
  });

  it("fails with exit 97 and a marker when cwd is missing, before running anything", async () => {
    const root = await tempDir();
    const res = sh(buildScript({ cwd: join(root, "nope"), command: "touch ran" }), { cwd: root });
    expect(res.status).toBe(CWD_MISSING_EXIT);
    expect(res.stderr).toContain(`${CWD_MISSING_MARKER}: ${join(root, "nope")}`);
    expect(await readdir(root)).toEqual([]);
  });

  it("passes the command's exit status and stdin through", () => {
    expect(sh(buildScript({ command: "exit 3" })).status).toBe(3);
    const res = sh(buildScript({ command: 'read line; echo "got $line"' }), { input: "hello\n" });
    expect(res.stdout).toBe("got hello\n");
  });

  it("forwards TERM sent to the shell alone to the whole command (what sshd's signal request reaches)", async () => {
    const child = spawn("/bin/sh", ["-c", buildScript({ command: "sleep 30 & echo $!; wait; sleep 30" })], {
      detached: true,
      stdio: ["ignore", "pipe", "ignore"],
    });
    const sleepPid = Number(
      await new Promise<string>((resolve) => child.stdout.once("data", (d) => resolve(String(d)))),
    );
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on("exit", (_code, signal) => resolve(signal)),
    );
    process.kill(child.pid as number, "SIGTERM");
    expect(await exited).toBe("SIGTERM");
    await expect.poll(() => processState(sleepPid), { timeout: 2000 }).toBe("gone");
  });
});

describe("writeFileScript", () => {
  it("writes stdin to the file with mode 0600, replacing an existing file atomically", async () => {
    const root = await tempDir();
    const cwd = join(root, "my app; $(touch pwned)");
    await mkdir(cwd);
    await writeFile(join(cwd, ".env"), "OLD=1\n", { mode: 0o644 });
    const content = "A='x'\nB=\"$(touch pwned)\"\nC=ünï\nno newline at end";
    const res = sh(writeFileScript(".env", { cwd }), { cwd: root, input: content });
    expect(res).toMatchObject({ status: 0, stderr: "" });
    expect(await readFile(join(cwd, ".env"), "utf8")).toBe(content);
    expect((await stat(join(cwd, ".env"))).mode & 0o777).toBe(0o600);
    expect(await readdir(cwd)).toEqual([".env"]);
  });

  it("fails with the cwd marker when the directory is missing", async () => {
    const root = await tempDir();
    const res = sh(writeFileScript(".env", { cwd: join(root, "missing") }), { cwd: root, input: "A=1" });
    expect(res.status).toBe(CWD_MISSING_EXIT);
    expect(res.stderr).toContain(CWD_MISSING_MARKER);
  });
});

/** "alive", or "gone" for a process that exited (or is a zombie nobody reaps). */
function processState(pid: number): "alive" | "gone" {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z") ? "gone" : "alive";
  } catch {
    return "gone";
  }
}
