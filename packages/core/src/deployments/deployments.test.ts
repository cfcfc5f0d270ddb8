import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AppItem } from "../apps/entity.ts";
import { appKey } from "../apps/entity.ts";
import { appLockKey } from "../apps/lock.ts";
import { idempotencyKey } from "../http/middleware/idempotency.ts";
import type { Key } from "../store/store.ts";
import { postDelivery } from "../testing/github-delivery.ts";
import { deploymentEnded, ownerWithServer, type TestClient, testClient } from "../testing/http.ts";
import { startTestSshServer, type TestSshServer } from "../testing/ssh-server.ts";
import { eventually, startWorkers } from "../testing/workers.ts";
import { deploymentKey } from "./entity.ts";
import { queueDeployment } from "./service.ts";

type Json = Record<string, unknown>;
const WEBHOOK_SECRET = "whsec-e2e";
const examples = createRequire(import.meta.url)("@octokit/webhooks-examples") as { name: string; examples: Json[] }[];
type Dep = {
  id: string;
  status: string;
  exitCode: number | null;
  error: string | null;
  durationMs: number | null;
  trigger: string;
  queuedAt: number;
  commitSha: string | null;
};
type Line = { seq: number; stream: string; line: string };
let t: TestClient;
let ssh: TestSshServer;
let token: string;
let userId: string;
let workers: Awaited<ReturnType<typeof startWorkers>>;
let serverId: string;
let projectId: string;

const post = (path: string, body?: unknown, headers?: Record<string, string>) =>
  t.json<Json>("POST", path, { token, body, headers });
const get = <T = Json>(path: string, as = token) => t.json<T>("GET", path, { token: as });

beforeAll(async () => {
  t = await testClient({
    HOIST_STATUS_SWEEP_SECONDS: "0",
    HOIST_DEPLOY_LEASE_SECONDS: "2",
    HOIST_DEPLOY_TIMEOUT_SECONDS: "4",
    HOIST_DEPLOY_LOG_MAX_BYTES: String(64 * 1024),
    HOIST_GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET,
  });
  workers = await startWorkers(t.deps);
  ssh = await startTestSshServer();
  ({ token, userId, serverId, projectId } = await ownerWithServer(t, ssh, "deployer"));
});
afterAll(async () => {
  await workers?.stop();
  await ssh?.stop();
});

async function makeApp(name: string, deploy: string, env: Record<string, string> = {}) {
  const dir = join(ssh.cwd, name);
  mkdirSync(dir, { recursive: true });
  const app = await post("/api/apps", { name, projectId, serverId, cdPath: dir, commands: { deploy } });
  expect(app.status).toBe(201);
  if (Object.keys(env).length > 0) await t.json("PUT", `/api/apps/${app.body.id}/env`, { token, body: env });
  return { id: app.body.id as string, dir };
}

const deploy = async (appId: string, body?: unknown, headers?: Record<string, string>) => {
  const res = await post(`/api/apps/${appId}/deployments`, body, headers);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return (res.body.deployment as Dep).id;
};

/** The real push example from @octokit/webhooks-examples, pointed at repo@branch, signed and posted. */
async function signedPush(repo: string, branch: string, sha: string, delivery: string) {
  const push = structuredClone(
    (examples.find((e) => e.name === "push")?.examples ?? []).find(
      (p) => String(p.ref).startsWith("refs/heads/") && !p.deleted,
    ),
  ) as Json & { repository: Json };
  Object.assign(push, { ref: `refs/heads/${branch}`, after: sha, deleted: false });
  push.repository.full_name = repo;
  return postDelivery<{ deployments: string[] }>(t.app, { body: push, secret: WEBHOOK_SECRET, id: delivery });
}

const finished = (id: string, timeoutMs = 15_000) => deploymentEnded<Dep>(t, token, id, timeoutMs);

async function allLines(id: string): Promise<Line[]> {
  const lines: Line[] = [];
  let after = 0;
  for (;;) {
    const page = await get<{ items: Line[]; nextCursor: string | null }>(
      `/api/deployments/${id}/logs?after=${after}&limit=1000`,
    );
    lines.push(...page.body.items);
    if (!page.body.nextCursor) return lines;
    after = Number(page.body.nextCursor);
  }
}

describe("deployments", () => {
  it("runs the deploy command in cdPath with Hoist's variables, streams masked logs, and finishes succeeded", async () => {
    const app = await makeApp(
      "web",
      'echo "deploying $HOIST_COMMIT_SHA on $HOIST_BRANCH"; echo "token is $API_TOKEN"; echo warn >&2; pwd',
      {
        API_TOKEN: "tok-abc-123",
      },
    );
    const id = await deploy(app.id, { ref: "main", sha: "0123456789abcdef0123456789abcdef01234567" });
    const done = await finished(id);
    expect(done).toMatchObject({ status: "succeeded", exitCode: 0, error: null, trigger: "manual" });
    expect(done.durationMs).toEqual(expect.any(Number));

    const lines = await allLines(id);
    expect(lines.map((l) => l.seq)).toEqual(lines.map((_, i) => i + 1));
    const text = lines.map((l) => `${l.stream}:${l.line}`);
    expect(text).toEqual(
      expect.arrayContaining([
        "stdout:deploying 0123456789abcdef0123456789abcdef01234567 on main",
        "stdout:token is ••••",
        "stderr:warn",
        `stdout:${app.dir}`,
      ]),
    );
    expect(JSON.stringify(lines)).not.toContain("tok-abc-123");
    expect(lines.filter((l) => l.stream === "system").map((l) => l.line.split(" ")[0])).toEqual([
      "Connecting",
      "Writing",
      "Running:",
      "Done:",
    ]);

    const usage = await get<Json>("/api/usage");
    expect(usage.body).toMatchObject({ deployments: expect.any(Number), deploySeconds: expect.any(Number) });
    expect(usage.body.deployments as number).toBeGreaterThanOrEqual(1);
    expect(usage.body.requests as number).toBeGreaterThan(3);
    const audit = await get<{ items: { action: string }[] }>(
      `/api/audit-logs?resourceType=deployment&resourceId=${id}`,
    );
    expect(audit.body.items.map((i) => i.action).sort()).toEqual(["deployment.finish", "deployment.trigger"]);
  });

  it("deploys a signed GitHub push end to end: webhook → queue → worker → SSH → succeeded", async () => {
    const app = await makeApp("pushed", 'echo "deploying $HOIST_COMMIT_SHA"; echo "db=$DB_PASSWORD"', {
      DB_PASSWORD: "hunter2-secret",
    });
    await t.json("PUT", `/api/apps/${app.id}`, {
      token,
      body: { repository: { fullName: "acme/shop", branch: "main", autoDeploy: true, deployOn: "push" } },
    });
    const sha = "c0ffee0000000000000000000000000000000001";
    const res = await signedPush("acme/shop", "main", sha, "e2e-delivery-1");
    expect(res.status).toBe(202);
    const [id] = res.body.deployments;
    const done = await finished(id as string);
    expect(done).toMatchObject({ status: "succeeded", trigger: "push" });
    const lines = (await allLines(id as string)).map((l) => l.line);
    expect(lines).toEqual(expect.arrayContaining([`deploying ${sha}`, "db=••••"]));
    expect(JSON.stringify(lines)).not.toContain("hunter2-secret");
  });

  it("records two racing pushes and runs them one at a time, in order", async () => {
    const app = await makeApp(
      "racing",
      'echo "start $HOIST_COMMIT_SHA" >> order.txt; sleep 0.5; echo "end $HOIST_COMMIT_SHA" >> order.txt',
    );
    await t.json("PUT", `/api/apps/${app.id}`, {
      token,
      body: { repository: { fullName: "acme/racing", branch: "main", autoDeploy: true, deployOn: "push" } },
    });
    const [a, b] = ["a".repeat(40), "b".repeat(40)];
    // Two pushes in quick succession (GitHub delivers them as they happen): the second arrives
    // while the first is still queued or starting.
    const first = await signedPush("acme/racing", "main", a, "race-1");
    const second = await signedPush("acme/racing", "main", b, "race-2");
    const ids = [first, second].map((r) => r.body.deployments[0] as string);
    const done = await Promise.all(ids.map((id) => finished(id)));
    expect(done.map((d) => d.status)).toEqual(["succeeded", "succeeded"]);
    // One at a time, in the order they were pushed.
    const order = (await readFile(join(app.dir, "order.txt"), "utf8")).trim().split("\n");
    expect(order).toEqual([`start ${a}`, `end ${a}`, `start ${b}`, `end ${b}`]);
  });

  it("fails with the command's exit code", async () => {
    const app = await makeApp("broken", "echo nope; exit 7");
    const done = await finished(await deploy(app.id));
    expect(done).toMatchObject({ status: "failed", exitCode: 7, error: "The deploy command exited with code 7" });
  });

  it("kills a deploy that runs past the timeout and fails it", async () => {
    const app = await makeApp("slow", "echo begin; sleep 30");
    const done = await finished(await deploy(app.id));
    expect(done.status).toBe("failed");
    expect(done.error).toMatch(/timed out/i);
  });

  it("runs one deployment per app at a time, in order", async () => {
    const app = await makeApp(
      "serial",
      'echo "start $HOIST_DEPLOYMENT_ID" >> order.txt; sleep 0.7; echo "end $HOIST_DEPLOYMENT_ID" >> order.txt',
    );
    const first = await deploy(app.id);
    await eventually(
      async () => (await get<Dep>(`/api/deployments/${first}`)).body.status === "running",
      10_000,
      "first running",
    );
    const second = await deploy(app.id);
    expect((await finished(first)).status).toBe("succeeded");
    expect((await finished(second)).status).toBe("succeeded");
    const order = (await readFile(join(app.dir, "order.txt"), "utf8")).trim().split("\n");
    expect(order).toEqual([`start ${first}`, `end ${first}`, `start ${second}`, `end ${second}`]);
  });

  it("supersedes older queued deployments with the newest", async () => {
    const app = await makeApp("busy", "sleep 0.8; echo $HOIST_DEPLOYMENT_ID >> ran.txt");
    const first = await deploy(app.id);
    await eventually(
      async () => (await get<Dep>(`/api/deployments/${first}`)).body.status === "running",
      10_000,
      "first running",
    );
    const middle = await deploy(app.id);
    const last = await deploy(app.id);
    expect((await finished(middle)).status).toBe("cancelled");
    expect((await finished(last)).status).toBe("succeeded");
    expect((await readFile(join(app.dir, "ran.txt"), "utf8")).trim().split("\n")).toEqual([first, last]);
  });

  it("cancels a queued deployment at once and a running one by killing its command", async () => {
    const app = await makeApp("cancel", "echo started; sleep 30");
    const running = await deploy(app.id);
    await eventually(
      async () => (await get<Dep>(`/api/deployments/${running}`)).body.status === "running",
      10_000,
      "running",
    );
    const queued = await deploy(app.id);
    const q = await post(`/api/deployments/${queued}/cancel`);
    expect(q.status).toBe(200);
    expect((q.body.deployment as Dep).status).toBe("cancelled");
    expect((await post(`/api/deployments/${running}/cancel`)).status).toBe(200);
    const done = await finished(running);
    expect(done.status).toBe("cancelled");
    await eventually(async () => ssh.liveCommands().length === 0, 5000, "the remote command to be gone");
    expect((await post(`/api/deployments/${running}/cancel`)).status).toBe(409);
  });

  it("fails a deployment whose worker died mid-run, instead of leaving it running", async () => {
    const app = await makeApp("orphan", "echo fine");
    const appItem = (await t.deps.store.get<AppItem>(appKey(userId, app.id))) as AppItem;
    // A worker took it, then vanished: running, lock held, lease long expired.
    const dead = await queueDeployment(t.deps, appItem, { trigger: "manual" }, null);
    await t.deps.store.update(deploymentKey(dead.id), {
      set: { status: "running", startedAt: Date.now() - 60_000, leaseUntil: Date.now() - 30_000 },
    });
    await t.deps.store.put({
      ...appLockKey(app.id),
      entity: "app-lock",
      appId: app.id,
      ownerId: userId,
      holder: "a-dead-worker",
      work: { kind: "deploy", deploymentId: dead.id },
      leaseUntil: Date.now() - 30_000,
      acquiredAt: Date.now() - 60_000,
    });
    // The redelivered message finds it.
    await t.deps.queue.send({ type: "deploy", deploymentId: dead.id });
    const done = await finished(dead.id);
    expect(done).toMatchObject({ status: "failed" });
    expect(done.error).toMatch(/stopped mid-run/);
    // And the app is free for the next one.
    expect((await finished(await deploy(app.id))).status).toBe("succeeded");
  });

  it("does nothing for a redelivered message of a finished deployment", async () => {
    const app = await makeApp("once", "echo once >> runs.txt");
    const id = await deploy(app.id);
    await finished(id);
    const before = await allLines(id);
    await t.deps.queue.send({ type: "deploy", deploymentId: id });
    await new Promise((r) => setTimeout(r, 800));
    expect(await allLines(id)).toEqual(before);
    expect((await readFile(join(app.dir, "runs.txt"), "utf8")).trim()).toBe("once");
  });

  it("keeps every line of fast output, in order, and truncates past the cap with a marker", async () => {
    const app = await makeApp("chatty", 'i=1; while [ $i -le 2500 ]; do echo "line $i"; i=$((i+1)); done');
    const id = await deploy(app.id);
    expect((await finished(id, 30_000)).status).toBe("succeeded");
    const lines = await allLines(id);
    const out = lines.filter((l) => l.stream === "stdout").map((l) => l.line);
    expect(out).toEqual(Array.from({ length: 2500 }, (_, i) => `line ${i + 1}`));

    // 4000 lines of 40 bytes against a 64 KiB cap: the first ~1600 are stored, then a marker; the run is not cut short.
    const flood = await makeApp(
      "flood",
      "i=1; while [ $i -le 4000 ]; do printf 'x %05d %032d\\n' $i 0; i=$((i+1)); done",
    );
    const fid = await deploy(flood.id);
    expect((await finished(fid, 30_000)).status).toBe("succeeded");
    const flooded = await allLines(fid);
    const marker = flooded.findIndex((l) => l.line.startsWith("[log truncated"));
    const kept = flooded.slice(0, marker).filter((l) => l.stream === "stdout");
    expect(kept.map((l) => l.line)).toEqual(
      kept.map((_, i) => `x ${String(i + 1).padStart(5, "0")} ${"0".repeat(32)}`),
    );
    expect(kept.length).toBeGreaterThan(1400);
    expect(kept.length).toBeLessThan(1700);
    expect(flooded.at(-2)?.line).toMatch(/^Done: exit code 0/);
    expect(flooded.at(-1)?.line).toMatch(
      /^\[\d+ lines .* past the stored-log cap were streamed live but not stored\]$/,
    );
    expect(flooded.at(-1)?.seq).toBeGreaterThan(4000);
  });

  it("honours Idempotency-Key and keeps tenants apart", async () => {
    const app = await makeApp("idem", "true");
    const a = await post(`/api/apps/${app.id}/deployments`, undefined, { "Idempotency-Key": "k-1" });
    const b = await post(`/api/apps/${app.id}/deployments`, undefined, { "Idempotency-Key": "k-1" });
    expect(b.status).toBe(202);
    expect((b.body.deployment as Dep).id).toBe((a.body.deployment as Dep).id);
    expect(b.res.headers.get("idempotent-replayed")).toBe("true");
    const c = await post(`/api/apps/${app.id}/deployments`, undefined, { "Idempotency-Key": "k-2" });
    expect((c.body.deployment as Dep).id).not.toBe((a.body.deployment as Dep).id);

    // Remembered for a day once answered; a claim a crash left pending frees its key within a minute.
    const done = await t.deps.store.get<Key & { expiresAt: number }>(
      idempotencyKey(userId, "POST", `/api/apps/${app.id}/deployments`, "k-1"),
    );
    expect((done?.expiresAt ?? 0) - Date.now() / 1000).toBeGreaterThan(23 * 3600);
    const crashed = idempotencyKey(userId, "POST", `/api/apps/${app.id}/deployments`, "k-crash");
    const fingerprint = createHash("sha256").update("").digest("base64url"); // of the empty body sent below
    const pending = { ...crashed, entity: "idempotency", state: "pending", fingerprint };
    await t.deps.store.put({ ...pending, expiresAt: Math.floor(Date.now() / 1000) + 30 });
    expect((await post(`/api/apps/${app.id}/deployments`, undefined, { "Idempotency-Key": "k-crash" })).status).toBe(
      409,
    );
    await t.deps.store.put({ ...pending, expiresAt: Math.floor(Date.now() / 1000) - 1 });
    expect((await post(`/api/apps/${app.id}/deployments`, undefined, { "Idempotency-Key": "k-crash" })).status).toBe(
      202,
    );

    const other = (await t.register("eve")).token;
    const id = (a.body.deployment as Dep).id;
    expect((await get(`/api/deployments/${id}`, other)).status).toBe(404);
    expect((await get(`/api/deployments/${id}/logs`, other)).status).toBe(404);
    expect((await t.json("POST", `/api/apps/${app.id}/deployments`, { token: other })).status).toBe(404);
    expect((await t.json("POST", `/api/deployments/${id}/cancel`, { token: other })).status).toBe(404);
    const list = await get<{ items: Dep[] }>(`/api/deployments`, other);
    expect(list.body.items).toEqual([]);
  });

  it("redeploys the same commit, as a rollback when it is not the latest", async () => {
    const app = await makeApp("rollback", "echo $HOIST_COMMIT_SHA");
    const one = await deploy(app.id, { sha: "aaaaaaa" });
    await finished(one);
    await finished(await deploy(app.id, { sha: "bbbbbbb" }));
    const again = await post(`/api/deployments/${one}/redeploy`);
    expect(again.status).toBe(202);
    const dep = again.body.deployment as Dep & { commitSha: string; redeployOf: string };
    expect(dep).toMatchObject({ trigger: "rollback", commitSha: "aaaaaaa", redeployOf: one });
    expect((await finished(dep.id)).status).toBe("succeeded");
  });
});
