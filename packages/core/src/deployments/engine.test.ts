import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type AppItem, appKey } from "../apps/entity.ts";
import { appLockKey } from "../apps/lock.ts";
import { serverKey } from "../servers/entity.ts";
import type { Store, TransactOp } from "../store/store.ts";
import { appReaches, deploymentEnded, ownerWithServer, type TestClient, testClient } from "../testing/http.ts";
import { startTestSshServer, type TestSshServer } from "../testing/ssh-server.ts";
import { eventually, startWorkers } from "../testing/workers.ts";
import { type DeploymentItem, deploymentKey, sortOf } from "./entity.ts";

/**
 * The deploy engine under faults and long histories (issue: "no deployment
 * lost, doubled or stranded"): real DynamoDB Local, real SSH on loopback,
 * the embedded queue and scheduler.
 */
type Json = Record<string, unknown>;
type Dep = { id: string; status: string; error: string | null; commitSha: string | null; exitCode: number | null };
let t: TestClient;
let ssh: TestSshServer;
let token: string;
let userId: string;
let serverId: string;
let projectId: string;
let workers: Awaited<ReturnType<typeof startWorkers>>;

const post = (path: string, body?: unknown) => t.json<Json>("POST", path, { token, body });
const get = <T = Json>(path: string) => t.json<T>("GET", path, { token });

beforeAll(async () => {
  t = await testClient({
    HOIST_STATUS_SWEEP_SECONDS: "0",
    HOIST_DEPLOY_LEASE_SECONDS: "2",
    HOIST_DEPLOY_TIMEOUT_SECONDS: "20",
    // A self-hosted install: the operator's webhook secret lets the admin bind a repository by name.
    HOIST_GITHUB_WEBHOOK_SECRET: "engine-test-secret",
  });
  workers = await startWorkers(t.deps);
  ssh = await startTestSshServer();
  ({ token, userId, serverId, projectId } = await ownerWithServer(t, ssh, "engineer"));
});
afterAll(async () => {
  await workers?.stop();
  await ssh?.stop();
});

/** Store faults, undone after each test. */
const restores: (() => void)[] = [];
afterEach(() => {
  for (const undo of restores.splice(0)) undo();
});
function failStore<K extends "update" | "put" | "transact">(
  method: K,
  when: (args: Parameters<Store[K]>) => boolean,
  times = 1,
) {
  const store = t.deps.store as Store;
  const original = store[method].bind(store) as (...args: unknown[]) => Promise<unknown>;
  let left = times;
  (store as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
    if (left > 0 && when(args as Parameters<Store[K]>)) {
      left--;
      return Promise.reject(Object.assign(new Error("Injected DynamoDB fault"), { name: "InternalServerError" }));
    }
    return original(...args);
  };
  restores.push(() => {
    (store as unknown as Record<string, unknown>)[method] = original;
  });
}

/** The deployment's terminal write (the first op of its finishing transaction). */
const terminalWrite = (op: TransactOp | undefined, pk?: string) =>
  op !== undefined &&
  "update" in op &&
  (pk === undefined || op.update.pk === pk) &&
  op.update.set?.status === "succeeded" &&
  "finishedAt" in op.update.set;

async function makeApp(name: string, commands: Json | null, extra: Json = {}) {
  const dir = join(ssh.cwd, name);
  mkdirSync(dir, { recursive: true });
  const res = await post("/api/apps", { name, projectId, serverId, cdPath: dir, commands, ...extra });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return { id: res.body.id as string, dir };
}

const deploy = async (appId: string, body?: unknown) => {
  const res = await post(`/api/apps/${appId}/deployments`, body);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return (res.body.deployment as Dep).id;
};

const finished = (id: string, timeoutMs = 20_000) => deploymentEnded<Dep>(t, token, id, timeoutMs);
const appIs = (id: string, status: string, timeoutMs = 10_000) => appReaches(t, token, id, status, timeoutMs);

describe("deploy engine", () => {
  it("runs the next push of an app with 60 finished deployments ahead of it", async () => {
    const app = await makeApp("history", { deploy: "echo $HOIST_DEPLOYMENT_ID >> ran.txt" });
    const old = Date.now() - 3_600_000;
    const history: DeploymentItem[] = Array.from({ length: 60 }, (_, i) => {
      const id = `dep_history${String(i).padStart(3, "0")}`;
      const queuedAt = old + i * 1000;
      return {
        ...deploymentKey(id),
        entity: "deployment",
        id,
        ownerId: userId,
        appId: app.id,
        status: i % 3 === 0 ? "failed" : "succeeded",
        trigger: "push",
        ref: "main",
        commitSha: null,
        commitMessage: null,
        author: null,
        queuedAt,
        startedAt: queuedAt,
        finishedAt: queuedAt + 500,
        durationMs: 500,
        exitCode: 0,
        error: null,
        redeployOf: null,
        logLines: 0,
        logTruncated: false,
        leaseUntil: null,
        cancelRequested: false,
        gsi1pk: `APP#${app.id}#DEPS`,
        gsi1sk: sortOf(queuedAt, id),
        gsi2pk: `OWNER#${userId}#DEPS`,
        gsi2sk: sortOf(queuedAt, id),
      };
    });
    await t.deps.store.batchPut(history);
    const id = await deploy(app.id);
    expect((await finished(id)).status).toBe("succeeded");
    expect((await readFile(join(app.dir, "ran.txt"), "utf8")).trim()).toBe(id);
  });

  it("fails a deployment to a server without credentials, saying so, and runs the next one once it has them", async () => {
    const box = await post("/api/servers", {
      name: "bare",
      address: ssh.host,
      sshPort: ssh.port,
      sshUser: ssh.username,
      privateKey: ssh.clientKey.private,
    });
    const app = await makeApp("nocreds", { deploy: "echo ok" }, { serverId: box.body.id });
    await t.deps.store.update(serverKey(userId, box.body.id as string), { set: { credentials: null } });
    const failed = await finished(await deploy(app.id));
    expect(failed).toMatchObject({ status: "failed" });
    expect(failed.error).toMatch(/no SSH credentials/);
    await t.json("PUT", `/api/servers/${box.body.id}`, { token, body: { privateKey: ssh.clientKey.private } });
    expect((await finished(await deploy(app.id))).status).toBe("succeeded");
  });

  it("ends a deployment whose finish meets DynamoDB errors, and still runs the next one", async () => {
    const app = await makeApp("flaky", { deploy: "echo $HOIST_DEPLOYMENT_ID >> ran.txt" });
    // The terminal write (with the deployment's usage) fails once (retried), and every follow-up write (audit) fails.
    failStore("transact", ([ops]) => terminalWrite(ops[0]), 1);
    failStore("put", ([item]) => item.entity === "audit" && String(item.action) === "deployment.finish", 10);
    const first = await deploy(app.id);
    const second = await deploy(app.id);
    expect((await finished(first)).status).toBe("succeeded");
    expect((await finished(second)).status).toBe("succeeded");
  });

  it("fails a deployment whose final write never lands (on redelivery), with the lock released for the next", async () => {
    const app = await makeApp("doomed", { deploy: "echo $HOIST_DEPLOYMENT_ID >> ran.txt" });
    const first = await deploy(app.id);
    failStore("transact", ([ops]) => terminalWrite(ops[0], `DEP#${first}`), 4);
    const second = await deploy(app.id);
    expect((await finished(second)).status).toBe("succeeded");
    const done = await finished(first);
    expect(done.status).toBe("failed");
    expect(done.error).toMatch(/stopped mid-run/);
    // The app is marked running by the second deployment's finish, just after its status is written.
    await eventually(async () => (await get(`/api/apps/${app.id}`)).body.status === "running", 5000, "the app running");
  });

  it("ends a deploy and a start whose job cannot be queued, answering 503, and the next ones run", async () => {
    const app = await makeApp("noqueue", { deploy: "echo deployed", start: "echo up", stop: "echo down" });
    const send = t.deps.queue.send.bind(t.deps.queue);
    t.deps.queue.send = () => Promise.reject(new Error("Injected queue outage"));
    restores.push(() => {
      t.deps.queue.send = send;
    });
    const refused = await post(`/api/apps/${app.id}/deployments`);
    expect(refused.status).toBe(503);
    const start = await post(`/api/apps/${app.id}/start`);
    expect(start.status).toBe(503);
    t.deps.queue.send = send;
    const list = await get<{ items: Dep[] }>(`/api/deployments?appId=${app.id}`);
    expect(list.body.items.map((d) => d.status)).toEqual(["failed"]);
    expect(list.body.items[0]?.error).toMatch(/could not queue/);
    const errored = await get(`/api/apps/${app.id}`);
    expect(errored.body).toMatchObject({
      status: "error",
      lastError: { message: expect.stringMatching(/could not queue/) },
    });
    expect((await post(`/api/apps/${app.id}/start`)).status).toBe(202);
    await appIs(app.id, "running");
    expect((await finished(await deploy(app.id))).status).toBe("succeeded");
  });

  it("never runs start, stop and deploy of one app at the same time", async () => {
    const step = (what: string) => `echo "start ${what}" >> order.txt; sleep 0.6; echo "end ${what}" >> order.txt`;
    const app = await makeApp("serial", { deploy: step("deploy"), start: step("start"), stop: step("stop") });
    expect((await post(`/api/apps/${app.id}/start`)).status).toBe(202);
    await appIs(app.id, "running");
    const id = await deploy(app.id);
    await eventually(async () => (await get<Dep>(`/api/deployments/${id}`)).body.status === "running", 10_000);
    // Accepted at once (the app is running), but its command waits for the deploy to finish.
    expect((await post(`/api/apps/${app.id}/stop`)).status).toBe(202);
    await appIs(app.id, "stopped");
    expect((await finished(id)).status).toBe("succeeded");
    expect((await readFile(join(app.dir, "order.txt"), "utf8")).trim().split("\n")).toEqual([
      "start start",
      "end start",
      "start deploy",
      "end deploy",
      "start stop",
      "end stop",
    ]);
  });

  it("ends a start whose worker died (its lease lapsed) as error, within a lease", async () => {
    const app = await makeApp("orphan-start", { start: "echo up" });
    await t.deps.store.update(appKey(userId, app.id), { set: { status: "starting", runId: "run-dead" } });
    await t.deps.store.put({
      ...appLockKey(app.id),
      entity: "app-lock",
      appId: app.id,
      ownerId: userId,
      holder: "dead-holder",
      work: { kind: "start", runId: "run-dead" },
      leaseUntil: Date.now() + 1000,
      acquiredAt: Date.now(),
    });
    // Only the dead worker's watchdog is left to notice.
    await t.deps.queue.send(
      { type: "app-wake", ownerId: userId, appId: app.id, holder: "dead-holder" },
      { delaySeconds: 1 },
    );
    const errored = await appIs(app.id, "error", 8000);
    expect((errored.lastError as Json).message).toMatch(/stopped mid-run/);
    expect((await post(`/api/apps/${app.id}/start`)).status).toBe(202);
    await appIs(app.id, "running");
  });

  it("leaves a deployed stopped app running with its auto-stop scheduled, and the auto-stop fires", async () => {
    const app = await makeApp("autostop", { deploy: "echo deployed", stop: "echo stopped > stopped.txt" });
    // Minutes are whole in the API; 0.03 min keeps the test short.
    await t.deps.store.update(appKey(userId, app.id), { set: { autoStopTimeout: 0.03 } });
    expect((await finished(await deploy(app.id))).status).toBe("succeeded");
    const running = await appIs(app.id, "running");
    expect((running.stopsAt as number) - (running.startedAt as number)).toBe(1800);
    await appIs(app.id, "stopped", 10_000);
    expect(await readFile(join(app.dir, "stopped.txt"), "utf8")).toBe("stopped\n");
    const audit = await get<{ items: unknown[] }>(
      `/api/audit-logs?resourceType=app&resourceId=${app.id}&action=AUTO_STOP`,
    );
    expect(audit.body.items).toHaveLength(1);
    const item = await t.deps.store.get<AppItem>(appKey(userId, app.id));
    expect(item?.startedAt).toBeNull();
  });

  it("deploys the app's branch, or a named ref, with the default commands, and records the commit deployed", async () => {
    const git = (cwd: string, ...args: string[]) =>
      execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.com", ...args], {
        cwd,
        encoding: "utf8",
      }).trim();
    const root = join(ssh.cwd, "git");
    mkdirSync(root, { recursive: true });
    git(root, "init", "-q", "--bare", "-b", "main", "origin.git");
    git(root, "clone", "-q", "origin.git", "work");
    const work = join(root, "work");
    const commit = (file: string, text: string) => {
      writeFileSync(join(work, file), text);
      git(work, "add", file);
      git(work, "commit", "-q", "-m", text);
      return git(work, "rev-parse", "HEAD");
    };
    git(work, "checkout", "-q", "-b", "main");
    commit("version.txt", "v1");
    git(work, "push", "-q", "origin", "main");
    git(root, "clone", "-q", "origin.git", "site"); // the app's directory on the target
    const v2 = commit("version.txt", "v2");
    git(work, "push", "-q", "origin", "main");
    git(work, "checkout", "-q", "-b", "feature");
    const v3 = commit("version.txt", "v3");
    git(work, "push", "-q", "origin", "feature");

    const bin = join(ssh.cwd, "fake-bin");
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, "docker"), '#!/bin/sh\necho "docker $*" >> docker.log\n', { mode: 0o755 });
    const res = await post("/api/apps", {
      name: "gitapp",
      projectId,
      serverId,
      cdPath: join(root, "site"),
      repository: { fullName: "acme/gitapp", branch: "main", autoDeploy: false, deployOn: "push" },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const appId = res.body.id as string;
    await t.json("PUT", `/api/apps/${appId}/env`, { token, body: { PATH: `${bin}:/usr/bin:/bin` } });
    const site = join(root, "site");

    const branch = await finished(await deploy(appId));
    expect(branch).toMatchObject({ status: "succeeded", commitSha: v2 });
    expect(await readFile(join(site, "version.txt"), "utf8")).toBe("v2");

    const feature = await finished(await deploy(appId, { ref: "feature" }));
    expect(feature).toMatchObject({ status: "succeeded", commitSha: v3 });
    expect(await readFile(join(site, "version.txt"), "utf8")).toBe("v3");

    // A redeploy of the branch deployment runs the commit it recorded.
    const again = await post(`/api/deployments/${branch.id}/redeploy`);
    const rolled = await finished((again.body.deployment as Dep).id);
    expect(rolled).toMatchObject({ status: "succeeded", commitSha: v2 });
    expect(await readFile(join(site, "version.txt"), "utf8")).toBe("v2");
    expect((await readFile(join(site, "docker.log"), "utf8")).trim().split("\n")).toEqual(
      Array(3).fill("docker compose up -d --build --remove-orphans"),
    );
  });
});
