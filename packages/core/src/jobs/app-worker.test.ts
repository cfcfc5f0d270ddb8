import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appLockKey } from "../apps/lock.ts";
import { type DeploymentItem, deploymentKey } from "../deployments/entity.ts";
import { leaveQueue } from "../deployments/queued.ts";
import type { Deps } from "../ports.ts";
import type { Executor } from "../servers/ssh.ts";
import type { Store } from "../store/store.ts";
import { deploymentEnded, ownerWithServer, type TestClient, testClient } from "../testing/http.ts";
import { countingStore } from "../testing/round-trips.ts";
import { startTestSshServer, type TestSshServer } from "../testing/ssh-server.ts";
import { deployJob } from "./app-worker.ts";

/**
 * The deploy job's path to the SSH exec, in DynamoDB round trips (issue: push
 * → command running in ≤ 50 ms of Hoist's own): the deployment, the app and
 * its oldest queued marker read together; then the lock taken in the same
 * transaction that moves the deployment to `running`, while the server and
 * env are read. Real DynamoDB Local and SSH on loopback; no queue consumer
 * runs, so each test calls the job itself.
 */
let t: TestClient;
let ssh: TestSshServer;
let token: string;
let userId: string;
let serverId: string;
let projectId: string;

beforeAll(async () => {
  t = await testClient({ HOIST_STATUS_SWEEP_SECONDS: "0" });
  ssh = await startTestSshServer();
  ({ token, userId, serverId, projectId } = await ownerWithServer(t, ssh, "waver"));
});
afterAll(async () => {
  await ssh?.stop();
});

async function queuedDeployment(name: string): Promise<{ appId: string; deploymentId: string }> {
  const dir = join(ssh.cwd, name);
  mkdirSync(dir, { recursive: true });
  const app = await t.json<{ id: string }>("POST", "/api/apps", {
    token,
    body: { name, projectId, serverId, cdPath: dir, commands: { deploy: "echo deployed" } },
  });
  expect(app.status).toBe(201);
  const dep = await t.json<{ deployment: { id: string } }>("POST", `/api/apps/${app.body.id}/deployments`, { token });
  expect(dep.status).toBe(202);
  return { appId: app.body.id, deploymentId: dep.body.deployment.id };
}

/** Publishing to a channel's subscribers is not awaited by the run: recorded, never a wave. */
const publishing = (call: string) => call.startsWith("query CHAN#");

describe("deploy job", () => {
  it("reaches the SSH exec in two awaited round trips", async () => {
    const { appId, deploymentId } = await queuedDeployment("two-waves");
    const counted = countingStore(t.deps.store, { uncounted: publishing });
    let atExec: { waves: number; calls: string[] } | undefined;
    const inner = t.deps.executor;
    const executor: Executor = {
      exec(target, script, opts) {
        atExec ??= { waves: counted.waves(), calls: [...counted.calls] };
        return inner.exec(target, script, opts);
      },
    };
    const deps: Deps = { ...t.deps, store: counted.store, executor };
    await deployJob({ type: "deploy", deploymentId, ownerId: userId, appId }, deps);

    expect(atExec, "the command ran").toBeDefined();
    const awaited = atExec?.calls.filter((c) => !publishing(c));
    // The deployment, the app and the app's queue; then the lock + `running`, the server and the env.
    expect(awaited?.slice(0, 3).sort()).toEqual(["get DEP", "get OWNER", `query APP#${appId}#QUEUED`]);
    expect(awaited?.slice(3).sort()).toEqual(["get OWNER", "get OWNER", "transact APP,DEP,APP"]);
    expect(atExec?.waves).toBe(2);
    const dep = await deploymentEnded<{ status: string }>(t, token, deploymentId);
    expect(dep.status).toBe("succeeded");
  });

  it("takes no lock when the deployment is cancelled between its read and the lock's transaction", async () => {
    const { appId, deploymentId } = await queuedDeployment("cancelled-between");
    const base = t.deps.store;
    let cancelled = false;
    const racing: Store = Object.create(base);
    racing.transact = async (ops) => {
      if (!cancelled) {
        cancelled = true;
        const dep = (await base.get<DeploymentItem>(deploymentKey(deploymentId))) as DeploymentItem;
        await leaveQueue({ store: base }, dep, { status: "cancelled", finishedAt: Date.now() });
      }
      return base.transact(ops);
    };
    let execs = 0;
    const executor: Executor = {
      exec(target, script, opts) {
        execs++;
        return t.deps.executor.exec(target, script, opts);
      },
    };
    await deployJob({ type: "deploy", deploymentId, ownerId: userId, appId }, { ...t.deps, store: racing, executor });

    expect(cancelled).toBe(true);
    expect(execs).toBe(0);
    expect(await base.get(appLockKey(appId), { consistent: true })).toBeUndefined();
    const dep = await base.get<DeploymentItem>(deploymentKey(deploymentId), { consistent: true });
    expect(dep?.status).toBe("cancelled");
  });
});
