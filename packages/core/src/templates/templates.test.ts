import { mkdir, mkdtemp, readFile, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ownerWithServer, type TestClient, testClient } from "../testing/http.ts";
import { startTestSshServer, type TestSshServer } from "../testing/ssh-server.ts";

/**
 * App templates (issue #17, part 4): built-ins listed, admins add their own,
 * and `POST /api/apps {templateId}` writes the files into cdPath over SFTP
 * (to the real loopback SSH server) byte-exact, refusing to overwrite
 * without `force`.
 */
type Json = Record<string, unknown>;
let t: TestClient;
let ssh: TestSshServer;
let admin: string;
let member: { token: string; userId: string; serverId: string; projectId: string };

beforeAll(async () => {
  const plansFile = join(await mkdtemp(join(tmpdir(), "hoist-plans-")), "plans.json");
  await writeFile(plansFile, JSON.stringify({ default: "free", plans: { free: {}, one: { limits: { apps: 1 } } } }));
  t = await testClient({
    HOIST_PLANS_FILE: plansFile,
    HOIST_SSH_CONNECT_TIMEOUT_SECONDS: "3",
    HOIST_STATUS_TIMEOUT_SECONDS: "5",
  });
  ssh = await startTestSshServer();
  admin = (await t.register("root")).token; // the first user: the admin
  member = await ownerWithServer(t, ssh, "bob");
});
afterAll(async () => {
  await t?.deps.executor.close?.();
  await ssh?.stop();
});

const call = (method: string, path: string, body?: unknown, token = member.token) =>
  t.json<Json>(method, path, { token, body });

/** Content a shell would mangle: quotes, `$`, backticks, backslashes, CRLF, a line with trailing spaces, no final newline. */
const TRICKY =
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal shell expansion, on purpose
  "#!/bin/sh\necho \"$HOME\" '$PATH' `id` \\$x \\\\ ${UNSET:-d}\r\ntrailing spaces   \n\n\ttab\nno newline at end";
const BINARY = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x0a, 0x0d, 0x24, 0x60, 0x27, 0x22, 0x5c, 0xc3, 0x28, 0x00]);
const CUSTOM = {
  id: "tricky",
  name: "Tricky bytes",
  description: "Everything a shell would get wrong",
  files: [
    {
      path: "compose.yaml",
      content: "services:\n  app:\n    image: busybox\n    command: ['sh', '-c', 'echo \"$$X\"']\n",
    },
    { path: "run.sh", content: TRICKY, mode: "0755" },
    { path: "deep/er/data.bin", content: BINARY.toString("base64"), encoding: "base64" },
    { path: "deep/empty.txt", content: "" },
    { path: "ünïcode – ✓.txt", content: "ünïcode – ✓\n" },
  ],
  env: { GREETING: 'it\'s "quoted" $HOME', PORT: "8080" },
  secretEnv: ["SECRET_KEY"],
  commands: { start: "docker compose up -d --build" },
};
const expectedBytes = (f: { content: string; encoding?: string }) =>
  Buffer.from(f.content, f.encoding === "base64" ? "base64" : "utf8");

async function expectFilesOf(dir: string, files: typeof CUSTOM.files) {
  for (const f of files) {
    const written = await readFile(join(dir, f.path));
    expect(Buffer.compare(written, expectedBytes(f)), f.path).toBe(0);
  }
}

const appBody = (name: string, cdPath: string, extra: Json = {}) => ({
  name,
  projectId: member.projectId,
  serverId: member.serverId,
  cdPath,
  ...extra,
});

describe("templates", () => {
  it("lists the five built-ins to any signed-in user, without content; one with its files", async () => {
    expect((await t.json("GET", "/api/templates")).status).toBe(401);
    const list = await call("GET", "/api/templates");
    expect(list.status).toBe(200);
    const items = list.body.items as Json[];
    expect(items.map((i) => i.id)).toEqual(["node", "python", "go", "static", "postgres-app"]);
    for (const item of items) {
      expect(item.builtin).toBe(true);
      const files = item.files as Json[];
      expect(files.map((f) => f.path)).toContain("compose.yaml");
      for (const f of files) expect(f).not.toHaveProperty("content");
    }
    const pg = await call("GET", "/api/templates/postgres-app");
    expect(pg.status).toBe(200);
    expect(pg.body).toMatchObject({ secretEnv: ["POSTGRES_PASSWORD"], env: { POSTGRES_USER: "app" } });
    const compose = (pg.body.files as Json[]).find((f) => f.path === "compose.yaml");
    expect(compose?.content).toMatch(/DATABASE_URL: "postgres:\/\/\$\{POSTGRES_USER:-app\}:/);
    expect(compose?.content).toMatch(/db-data:\/var\/lib\/postgresql\/data/);
    expect((await call("GET", "/api/templates/nope")).status).toBe(404);
    expect((await call("GET", "/api/templates/Bad%20Id")).status).toBe(400);
  });

  it("lets admins add and delete templates: members 403, bad input 400 naming the field, clashes 409", async () => {
    expect((await call("POST", "/api/templates", CUSTOM)).status).toBe(403);
    const bad = async (files: Json[], extra: Json = {}) => {
      const res = await call("POST", "/api/templates", { ...CUSTOM, id: "bad", files, ...extra }, admin);
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      return JSON.stringify(res.body.errors);
    };
    expect(await bad([{ path: "../escape", content: "x" }])).toMatch(/files\.0\.path.*\.\./);
    expect(await bad([{ path: "/etc/passwd", content: "x" }])).toMatch(/relative path/);
    expect(await bad([{ path: "a//b", content: "x" }])).toMatch(/empty segments/);
    expect(await bad([{ path: ".env", content: "x" }])).toMatch(/env/);
    expect(await bad([{ path: "a\nb", content: "x" }])).toMatch(/control characters/);
    expect(
      await bad([
        { path: "a", content: "x" },
        { path: "a", content: "y" },
      ]),
    ).toMatch(/appears twice/);
    expect(
      await bad([
        { path: "a", content: "x" },
        { path: "a/b", content: "y" },
      ]),
    ).toMatch(/also the directory/);
    expect(await bad([{ path: "x", content: "!!", encoding: "base64" }])).toMatch(/base64/);
    expect(await bad([{ path: "x", content: "x", mode: "4755" }])).toMatch(/octal/);
    expect(await bad([])).toMatch(/files/);
    expect(await bad([{ path: "x", content: "x".repeat(129 * 1024) }])).toMatch(/exceed/);
    expect(await bad([{ path: "x", content: "x" }], { env: { "BAD-NAME": "x" } })).toMatch(/env/);
    expect(await bad([{ path: "x", content: "x" }], { id: "Has Spaces" })).toMatch(/id/);
    expect(await bad([{ path: "x", content: "x" }], { extra: true })).toMatch(/extra/);

    const created = await call("POST", "/api/templates", CUSTOM, admin);
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body).toMatchObject({ id: "tricky", builtin: false, env: CUSTOM.env });
    expect((await call("POST", "/api/templates", CUSTOM, admin)).status).toBe(409);
    expect((await call("POST", "/api/templates", { ...CUSTOM, id: "node" }, admin)).status).toBe(409);
    const listed = ((await call("GET", "/api/templates")).body.items as Json[]).find((i) => i.id === "tricky");
    expect(listed?.files).toContainEqual({ path: "deep/er/data.bin", size: BINARY.length });
    expect(listed?.files).toContainEqual({ path: "run.sh", size: Buffer.byteLength(TRICKY), mode: "0755" });

    await call("POST", "/api/templates", { ...CUSTOM, id: "short-lived" }, admin);
    expect((await call("DELETE", "/api/templates/short-lived")).status).toBe(403);
    expect((await call("DELETE", "/api/templates/node", undefined, admin)).status).toBe(409);
    expect((await call("DELETE", "/api/templates/short-lived", undefined, admin)).status).toBe(200);
    expect((await call("DELETE", "/api/templates/short-lived", undefined, admin)).status).toBe(404);
    expect((await call("GET", "/api/templates/short-lived")).status).toBe(404);

    const audit = await call("GET", "/api/audit-logs?resourceType=template&resourceId=tricky", undefined, admin);
    expect((audit.body.items as Json[]).map((e) => e.action)).toEqual(["template.create"]);
  });

  it("creates an app from a template: files byte-exact over SFTP, env and commands set", async () => {
    const dir = join(ssh.cwd, "tricky-app");
    const res = await call("POST", "/api/apps", appBody("tricky-app", dir, { templateId: "tricky" }));
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.commands).toEqual(CUSTOM.commands);
    await expectFilesOf(dir, CUSTOM.files);
    expect((await stat(join(dir, "run.sh"))).mode & 0o777).toBe(0o755);

    const env = await call("GET", `/api/apps/${res.body.id}/env?reveal=true`);
    expect(env.body).toMatchObject(CUSTOM.env);
    expect(env.body.SECRET_KEY).toMatch(/^[A-Za-z0-9_-]{32}$/);
    const audit = await call("GET", `/api/audit-logs?resourceType=app&resourceId=${res.body.id}&action=app.create`);
    expect((audit.body.items as Json[])[0]?.details).toMatchObject({ template: "tricky", overwritten: [] });

    // Each app gets its own secret; the request's commands win over the template's.
    const other = await call(
      "POST",
      "/api/apps",
      appBody("tricky-2", join(ssh.cwd, "tricky-2"), { templateId: "tricky", commands: { stop: "echo bye" } }),
    );
    expect(other.body.commands).toEqual({ start: "docker compose up -d --build", stop: "echo bye" });
    const env2 = await call("GET", `/api/apps/${other.body.id}/env?reveal=true`);
    expect(env2.body.SECRET_KEY).not.toBe(env.body.SECRET_KEY);
  });

  it("refuses to overwrite existing files without force (409 naming them, nothing written); force overwrites", async () => {
    const dir = join(ssh.cwd, "taken");
    await mkdir(join(dir, "deep"), { recursive: true });
    await writeFile(join(dir, "run.sh"), "my own script\n");
    await writeFile(join(dir, "deep", "empty.txt"), "not empty");
    const apps = async () => ((await call("GET", "/api/apps")).body.items as Json[]).length;
    const before = await apps();
    const requests = ssh.sftpRequests.length;

    const refused = await call("POST", "/api/apps", appBody("taken", dir, { templateId: "tricky" }));
    expect(refused.status, JSON.stringify(refused.body)).toBe(409);
    expect(refused.body).toMatchObject({ type: "https://hoist.dev/problems/files_exist" });
    expect(refused.body.existing).toEqual(["run.sh", "deep/empty.txt"]);
    expect(refused.body.detail).toMatch(/run\.sh, deep\/empty\.txt.*force/);
    expect(ssh.sftpRequests.slice(requests)).toEqual([]); // nothing opened, made or written
    expect(await readFile(join(dir, "run.sh"), "utf8")).toBe("my own script\n");
    await expect(stat(join(dir, "compose.yaml"))).rejects.toThrow();
    expect(await apps()).toBe(before);

    // The same cdPath again (an app already made there): refused too, its files unchanged.
    const first = join(ssh.cwd, "tricky-app");
    await writeFile(join(first, "compose.yaml"), "edited by hand\n");
    const again = await call("POST", "/api/apps", appBody("again", first, { templateId: "tricky" }));
    expect(again.status).toBe(409);
    expect((again.body.existing as string[]).length).toBe(CUSTOM.files.length);
    expect(await readFile(join(first, "compose.yaml"), "utf8")).toBe("edited by hand\n");

    const forced = await call("POST", "/api/apps", appBody("taken", dir, { templateId: "tricky", force: true }));
    expect(forced.status, JSON.stringify(forced.body)).toBe(201);
    await expectFilesOf(dir, CUSTOM.files);
    expect(await apps()).toBe(before + 1);
    const audit = await call("GET", `/api/audit-logs?resourceType=app&resourceId=${forced.body.id}&action=app.create`);
    expect((audit.body.items as Json[])[0]?.details).toMatchObject({ overwritten: ["run.sh", "deep/empty.txt"] });
  });

  it("writes a built-in exactly as GET shows it, under ~ too", async () => {
    const res = await call("POST", "/api/apps", appBody("pg", "~/apps/pg", { templateId: "postgres-app" }));
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const template = await call("GET", "/api/templates/postgres-app");
    await expectFilesOf(join(ssh.cwd, "apps", "pg"), template.body.files as typeof CUSTOM.files);
    const env = await call("GET", `/api/apps/${res.body.id}/env?reveal=true`);
    expect(env.body).toMatchObject({ APP_PORT: "3000", POSTGRES_USER: "app", POSTGRES_DB: "app" });
    expect(env.body.POSTGRES_PASSWORD).toMatch(/^[A-Za-z0-9_-]{32}$/);
    // Its files came over SFTP, not from git: a deploy rebuilds what is there.
    expect(res.body.commands).toEqual({
      start: "docker compose up -d --build",
      deploy: "docker compose up -d --build --remove-orphans",
    });
  });

  it("answers bad template requests clearly, and checks the plan before writing anything", async () => {
    const dir = join(ssh.cwd, "never");
    const unknown = await call("POST", "/api/apps", appBody("x", dir, { templateId: "no-such" }));
    expect(unknown.status).toBe(400);
    expect(JSON.stringify(unknown.body.errors)).toMatch(/body\.templateId.*no-such/);
    const forceAlone = await call("POST", "/api/apps", appBody("x", dir, { force: true }));
    expect(forceAlone.status).toBe(400);
    expect(JSON.stringify(forceAlone.body.errors)).toMatch(/force/);
    const noServer = await call(
      "POST",
      "/api/apps",
      appBody("x", dir, { templateId: "node", serverId: "srv_doesnotexist000" }),
    );
    expect(noServer.status).toBe(400);
    expect(JSON.stringify(noServer.body.errors)).toMatch(/body\.serverId/);

    // Another user: on the plan "one" with one app already, a template app is a 402 before any SFTP.
    const carol = await ownerWithServer(t, ssh, "carol");
    expect((await t.json("PATCH", `/api/users/${carol.userId}`, { token: admin, body: { plan: "one" } })).status).toBe(
      200,
    );
    const own = { projectId: carol.projectId, serverId: carol.serverId };
    const firstApp = await call("POST", "/api/apps", { name: "a", cdPath: "/srv/a", ...own }, carol.token);
    expect(firstApp.status).toBe(201);
    const requests = ssh.sftpRequests.length;
    const over = await call("POST", "/api/apps", { name: "b", cdPath: dir, templateId: "node", ...own }, carol.token);
    expect(over.status).toBe(402);
    expect(ssh.sftpRequests.slice(requests)).toEqual([]);
    await expect(stat(dir)).rejects.toThrow();
    // Bob's project is not Carol's: 400, nothing written.
    const foreign = await call(
      "POST",
      "/api/apps",
      appBody("x", dir, { templateId: "node", serverId: carol.serverId }),
    );
    expect(foreign.status).toBe(400);
    await expect(stat(dir)).rejects.toThrow();
  });

  it("reports an unreachable server as an SSH problem, creating nothing", async () => {
    const down = await startTestSshServer();
    const dave = await ownerWithServer(t, down, "dave");
    await down.stop();
    const res = await call(
      "POST",
      "/api/apps",
      { name: "x", cdPath: "/srv/x", templateId: "node", projectId: dave.projectId, serverId: dave.serverId },
      dave.token,
    );
    expect(res.status).toBe(502);
    expect(res.body).toMatchObject({ type: "https://hoist.dev/problems/ssh_refused" });
    expect(((await call("GET", "/api/apps", undefined, dave.token)).body.items as Json[]).length).toBe(0);
  });
});
