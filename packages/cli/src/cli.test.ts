import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Harness, PASSWORD, startHarness } from "./testing/harness.ts";
import { addServer, createAppSteps } from "./testing/steps.ts";

/** `hoist` as a child process against the embedded runtime and a loopback SSH target. */
let h: Harness;
beforeAll(async () => {
  h = await startHarness(inject("dynamoEndpoint"));
  await h.register("ada");
}, 60_000);
afterAll(() => h?.stop());

const configFile = () => join(h.configHome, "hoist", "config.json");
const json = (text: string) => JSON.parse(text) as Record<string, unknown>;

describe("hoist CLI", () => {
  it("refuses a bad password with the problem's title and detail, and no stack", async () => {
    const r = await h.cli(["login", "-u", "ada", "--password-stdin"], { input: "wrong password\n" });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: Unauthorized: .+/m);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(() => statSync(configFile())).toThrow();
  });

  it("logs in, stores the session readable by the user alone, and refreshes it silently", async () => {
    const r = await h.cli(["login", "-u", "ada", "--password-stdin"], { input: `${PASSWORD}\n` });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Signed in to ${h.runtime.url} as ada`);
    expect(statSync(configFile()).mode & 0o777).toBe(0o600);
    expect(statSync(join(h.configHome, "hoist")).mode & 0o777).toBe(0o700);
    const stored = json(readFileSync(configFile(), "utf8"));
    expect(stored).toMatchObject({ url: h.runtime.url, username: "ada", accessToken: expect.any(String) });

    // An access token the server refuses: one refresh, the call retried, the new pair saved.
    writeFileSync(configFile(), JSON.stringify({ ...stored, accessToken: "expired.token.value" }));
    const who = await h.cli(["whoami", "--json"]);
    expect(who.code).toBe(0);
    expect(json(who.stdout)).toMatchObject({ url: h.runtime.url, user: { username: "ada" } });
    const after = json(readFileSync(configFile(), "utf8"));
    expect(after.refreshToken).not.toBe(stored.refreshToken);
    expect(after.accessToken).not.toBe("expired.token.value");
    expect(statSync(configFile()).mode & 0o777).toBe(0o600);
  });

  it("creates a server, project and app, sets env, and deploy --follow prints the output and exits 0", async () => {
    const appDir = join(h.ssh.cwd, "web");
    mkdirSync(appDir);
    const steps = [
      addServer(h),
      ["projects", "create", "shop"],
      createAppSteps({
        name: "web",
        project: "shop",
        path: appDir,
        command: 'test "$GREETING" = "hello world" && echo env ok; for i in 1 2 3; do echo step $i; done',
      }),
      ["env", "set", "web", "GREETING=hello world", "DROP=me"],
      ["env", "unset", "web", "DROP"],
    ];
    for (const args of steps) {
      const r = await h.cli(args);
      expect(r.stderr, args.join(" ")).toBe("");
      expect(r.code).toBe(0);
    }
    const env = await h.cli(["env", "list", "web", "--json"]);
    expect(Object.keys(json(env.stdout))).toEqual(["GREETING"]);

    const r = await h.cli(["deploy", "web", "--follow"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("env ok\nstep 1\nstep 2\nstep 3\n");
    expect(r.stderr).toMatch(/==> Running: /);
    expect(r.stderr).toMatch(/==> dep_\S+ succeeded/);
  });

  it("runs a command once in the app's directory with its env: exec prints its output and exits with its code", async () => {
    const r = await h.cli(["exec", "web", "--", 'test "$GREETING" = "hello world" && basename "$PWD";', "exit", "3"]);
    expect(r.stdout).toBe("web\n");
    expect(r.code).toBe(3);
    const j = await h.cli(["exec", "web", "--json", "--", "echo", "plain", "words"]);
    expect(j.code).toBe(0);
    expect(json(j.stdout)).toMatchObject({ exitCode: 0, output: "plain words", truncated: false, timedOut: false });
  });

  it("prints the app's container logs, the last lines from a time on", async () => {
    const at = (s: number) => `2025-01-31T12:00:0${s}.000000000Z`;
    writeFileSync(
      join(h.ssh.cwd, "web", "compose.log"),
      [`web-1  | ${at(1)} booting`, `db-1   | ${at(2)} ready`, `web-1  | ${at(3)} listening`, ""].join("\n"),
    );
    const r = await h.cli(["apps", "logs", "web", "-n", "2"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("db-1 | ready\nweb-1 | listening\n");
    const since = await h.cli(["apps", "logs", "web", "--since", at(3), "--json"]);
    expect(json(since.stdout).items).toEqual([
      { ts: Date.parse(at(3)), time: at(3), service: "web-1", line: "listening" },
    ]);
  });

  it("exits 1 when the deployment fails, and --json prints one object per line", async () => {
    const appDir = join(h.ssh.cwd, "bad");
    mkdirSync(appDir);
    const created = await h.cli([
      ...createAppSteps({ name: "bad", project: "shop", path: appDir, command: "echo about to fail; exit 3" }),
      "--json",
    ]);
    expect(json(created.stdout)).toMatchObject({ id: expect.stringMatching(/^app_/), name: "bad" });

    const failed = await h.cli(["deploy", "bad", "--follow"]);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toBe("about to fail\n");
    expect(failed.stderr).toMatch(/failed: The deploy command exited with code 3/);

    const streamed = await h.cli(["deploy", "bad", "--follow", "--json"]);
    expect(streamed.code).toBe(1);
    const events = streamed.stdout.trim().split("\n").map(json);
    expect(events.filter((e) => e.type === "log" && e.stream === "stdout").map((e) => e.line)).toEqual([
      "about to fail",
    ]);
    expect(events.at(-1)).toMatchObject({ type: "status", status: "failed", deployment: { exitCode: 3 } });

    const list = await h.cli(["apps", "list", "--json"]);
    expect((JSON.parse(list.stdout) as { name: string }[]).map((a) => a.name).sort()).toEqual(["bad", "web"]);
    const logs = await h.cli(["logs", "bad", "--json"]);
    expect((JSON.parse(logs.stdout) as { line: string }[]).map((l) => l.line)).toContain("about to fail");
  });

  it("deploys in CI with HOIST_TOKEN, and stores an API token with login --token", async () => {
    const { accessToken } = json(readFileSync(configFile(), "utf8"));
    const res = await fetch(`${h.runtime.url}/api/tokens`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${accessToken}` },
      body: JSON.stringify({ name: "ci", scopes: ["deploy"] }),
    });
    expect(res.status).toBe(201);
    const { token } = (await res.json()) as { token: string };
    const ci = await h.cli(["deploy", "web", "--follow"], {
      env: { HOIST_TOKEN: token, XDG_CONFIG_HOME: join(h.configHome, "ci-runner") },
    });
    expect(ci.stderr).toMatch(/succeeded/);
    expect(ci.code).toBe(0);
    expect(ci.stdout).toContain("step 3\n");

    const home = join(h.configHome, "token-user");
    const login = await h.cli(["login", "--token", token], { env: { XDG_CONFIG_HOME: home } });
    expect(login.code).toBe(0);
    const who = await h.cli(["whoami"], { env: { XDG_CONFIG_HOME: home } });
    expect(who.stdout).toMatch(/^ada </);
    expect(json(readFileSync(join(home, "hoist", "config.json"), "utf8"))).toMatchObject({ apiToken: token });
  });

  it("rolls back to the previous successful deployment, and sums it all up in status", async () => {
    type Dep = { id: string; appId: string; trigger: string; redeployOf: string | null };
    const webDeployments = async () => {
      const status = json((await h.cli(["status", "--json"])).stdout);
      const web = (status.apps as { id: string; name: string }[]).find((a) => a.name === "web");
      return (status.deployments as Dep[]).filter((d) => d.appId === web?.id);
    };
    const [, previous] = await webDeployments();
    const back = await h.cli(["rollback", "web", "--follow"]);
    expect(back.code).toBe(0);
    expect(back.stdout).toContain("step 3\n");
    const [newest] = await webDeployments();
    expect(newest).toMatchObject({ trigger: "rollback", redeployOf: previous?.id });

    const servers = await h.cli(["servers", "list"]);
    expect(servers.stdout).toMatch(/^ID\s+NAME\s+ADDRESS/);
    expect(servers.stdout).toContain("box");
  });

  it("says what is wrong: an unknown app, a bad field", async () => {
    const missing = await h.cli(["deploy", "nope"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error: no app named "nope"/);
    const invalid = await h.cli(["projects", "create", " "]);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/^error: Bad Request: .+\n {2}body\.name: /);
  });
});
