import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestSshServer, type TestSshServer } from "../testing/ssh-server.ts";
import { FilesExistError } from "./remote-files.ts";
import { sftpDir } from "./sftp.ts";
import { type RemoteFile, Ssh2Executor, SshError, type SshTarget } from "./ssh.ts";

const executor = new Ssh2Executor();
const OPTS = { timeoutMs: 5000, connectTimeoutMs: 2000 };
let server: TestSshServer;

beforeAll(async () => {
  server = await startTestSshServer();
});
afterAll(async () => {
  await executor.close();
  await server?.stop();
});

const target = (over: Partial<SshTarget> = {}): SshTarget => ({
  host: server.host,
  port: server.port,
  username: server.username,
  privateKey: server.clientKey.private,
  hostKeyFingerprint: server.hostKeyFingerprint,
  ...over,
});

const BINARY = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x0a, 0x0d, 0x24, 0x60, 0x27, 0x22, 0x5c, 0xc3, 0x28]);
const text = (s: string) => Buffer.from(s, "utf8");

describe("Ssh2Executor.writeFiles over SFTP", () => {
  it("creates the directories and writes the exact bytes and modes, large files too", async () => {
    const dir = join(server.cwd, "exact", "deep");
    const big = Buffer.alloc(300_000, 7).fill(Buffer.from("abc$`'\"\n"), 1000, 200_000);
    const files: RemoteFile[] = [
      { path: "run.sh", content: text("#!/bin/sh\necho \"$HOME\" `id` 'x' \\\n"), mode: 0o755 },
      { path: "a/b/c/bin.dat", content: BINARY },
      { path: "empty", content: new Uint8Array() },
      { path: "big.bin", content: big, mode: 0o600 },
    ];
    const result = await executor.writeFiles(target(), dir, files, OPTS);
    expect(result).toMatchObject({
      written: ["run.sh", "a/b/c/bin.dat", "empty", "big.bin"],
      overwritten: [],
      hostKeyFingerprint: server.hostKeyFingerprint,
    });
    for (const f of files) expect(Buffer.compare(await readFile(join(dir, f.path)), Buffer.from(f.content))).toBe(0);
    expect((await stat(join(dir, "run.sh"))).mode & 0o777).toBe(0o755);
    expect((await stat(join(dir, "big.bin"))).mode & 0o777).toBe(0o600);
    // Connections are not kept (idleMs 0): the lease was given back and the connection closed.
    await expect.poll(() => server.openConnections()).toBe(0);
  });

  it("refuses when any file exists, names them all and writes nothing; force overwrites", async () => {
    const dir = join(server.cwd, "conflict");
    await mkdir(join(dir, "sub"), { recursive: true });
    await writeFile(join(dir, "sub", "keep.txt"), "mine");
    await writeFile(join(dir, "compose.yaml"), "mine too");
    const files: RemoteFile[] = [
      { path: "new.txt", content: text("new") },
      { path: "sub/keep.txt", content: text("theirs") },
      { path: "compose.yaml", content: text("services: {}\n") },
      { path: "fresh/dir/file", content: text("x") },
    ];
    const before = server.sftpRequests.length;
    const refused = await executor.writeFiles(target(), dir, files, OPTS).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(FilesExistError);
    expect((refused as FilesExistError).status).toBe(409);
    expect((refused as FilesExistError).existing).toEqual(["sub/keep.txt", "compose.yaml"]);
    // Nothing opened, made or written on the server.
    expect(server.sftpRequests.slice(before)).toEqual([]);
    expect(await readFile(join(dir, "sub", "keep.txt"), "utf8")).toBe("mine");
    await expect(stat(join(dir, "new.txt"))).rejects.toThrow();
    await expect(stat(join(dir, "fresh"))).rejects.toThrow();

    const forced = await executor.writeFiles(target(), dir, files, { ...OPTS, force: true });
    expect(forced.overwritten).toEqual(["sub/keep.txt", "compose.yaml"]);
    expect(await readFile(join(dir, "sub", "keep.txt"), "utf8")).toBe("theirs");
    expect(await readFile(join(dir, "compose.yaml"), "utf8")).toBe("services: {}\n");
    expect(await readFile(join(dir, "fresh", "dir", "file"), "utf8")).toBe("x");
  });

  it("resolves ~ against the login directory, and reports a path that is not a directory", async () => {
    await executor.writeFiles(target(), "~/home-app", [{ path: "x.txt", content: text("home") }], OPTS);
    expect(await readFile(join(server.cwd, "home-app", "x.txt"), "utf8")).toBe("home");
    expect(sftpDir("~")).toBe(".");
    expect(sftpDir("~/a/b/")).toBe("a/b");
    expect(sftpDir("/srv//app/")).toBe("/srv/app");

    await writeFile(join(server.cwd, "plain-file"), "not a dir");
    const err = await executor
      .writeFiles(target(), join(server.cwd, "plain-file"), [{ path: "x", content: text("x") }], OPTS)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SshError);
    expect((err as SshError).message).toMatch(/plain-file .*not a directory/);
  });

  it("refuses bad paths before connecting, and fails SSH errors as SshError", async () => {
    for (const path of ["../escape", "/etc/passwd", "a//b", "a/./b", "dup", "a\\b"]) {
      const files = [{ path, content: text("x") }];
      if (path === "dup") files.push({ path, content: text("y") });
      await expect(executor.writeFiles(target(), server.cwd, files, OPTS)).rejects.toThrow(/writeFiles/);
    }
    const wrongKey = target({ hostKeyFingerprint: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" });
    const err = await executor
      .writeFiles(wrongKey, server.cwd, [{ path: "x", content: text("x") }], OPTS)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SshError);
    expect((err as SshError).kind).toBe("host-key");
    const cancelled = await executor
      .writeFiles(target(), server.cwd, [{ path: "x", content: text("x") }], { ...OPTS, signal: AbortSignal.abort() })
      .catch((e: unknown) => e);
    expect((cancelled as SshError).kind).toBe("aborted");
  });
});
