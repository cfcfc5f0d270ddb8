import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type AppItem, appKey } from "../apps/entity.ts";
import type { CountsItem } from "../plans/entity.ts";
import type { Broadcaster } from "../ports.ts";
import { subscribe } from "../realtime/subscribe.ts";
import { queryAll } from "../store/store.ts";
import { appReaches, deploymentEnded, ownerWithServer, type TestClient, testClient } from "../testing/http.ts";
import { startTestSshServer, type TestSshServer } from "../testing/ssh-server.ts";
import { eventually, startWorkers } from "../testing/workers.ts";
import { userKeys } from "../users/entity.ts";
import { closeOutRunningApps } from "./close-out.ts";
import { meteredRunKey, monthOf, RUN_SHARDS, type UsageItem, usageKey, userCountsKey } from "./entity.ts";
import { minutesByMonth, span } from "./running.ts";

type Json = Record<string, unknown>;
const MIN = 60_000;
let t: TestClient;
let ssh: TestSshServer;
let workers: Awaited<ReturnType<typeof startWorkers>>;
let clockMs = Date.UTC(2030, 5, 10, 12, 0, 0);
const T0 = clockMs;

beforeAll(async () => {
  // Unlimited by default; "small" for the limit tests.
  const plans = join(mkdtempSync(join(tmpdir(), "hoist-plans-")), "plans.json");
  writeFileSync(
    plans,
    JSON.stringify({
      default: "open",
      plans: {
        open: { limits: {}, prices: { appRunningMinutes: 0.5 } },
        small: { limits: { runningApps: 3, appMinutes: 10 }, prices: { appRunningMinutes: 0.5 } },
      },
    }),
  );
  t = await testClient({
    HOIST_PLANS_FILE: plans,
    HOIST_STATUS_SWEEP_SECONDS: "0",
    HOIST_SSH_CONNECT_TIMEOUT_SECONDS: "3",
    HOIST_SSH_COMMAND_TIMEOUT_SECONDS: "3",
  });
  t.deps.now = () => clockMs;
  workers = await startWorkers(t.deps);
  ssh = await startTestSshServer();
});

afterAll(async () => {
  await workers?.stop();
  await ssh?.stop();
});

afterEach(() => {
  clockMs = T0;
});

let users = 0;
async function owner(plan?: string) {
  const o = await ownerWithServer(t, ssh, `meter${++users}`);
  if (plan) await t.deps.store.update(userKeys.user(o.userId), { set: { plan } });
  const post = (path: string, body?: unknown) => t.json<Json>("POST", path, { token: o.token, body });
  const makeApp = async (name: string, commands: Json = {}) => {
    const dir = join(ssh.cwd, `${o.userId}-${name}`);
    mkdirSync(dir, { recursive: true });
    const res = await post("/api/apps", {
      name,
      projectId: o.projectId,
      serverId: o.serverId,
      cdPath: dir,
      commands: { start: "echo up", stop: "echo down", deploy: "echo deployed", ...commands },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.id as string;
  };
  const reaches = (id: string, status: string) => appReaches(t, o.token, id, status);
  const start = async (id: string) => {
    expect((await post(`/api/apps/${id}/start`)).status).toBe(202);
    return reaches(id, "running");
  };
  const stop = async (id: string, end = "stopped") => {
    expect((await post(`/api/apps/${id}/stop`)).status).toBe(202);
    return reaches(id, end);
  };
  return { ...o, post, makeApp, reaches, start, stop };
}

const booked = async (userId: string, month = monthOf(T0)) =>
  (await t.deps.store.get<UsageItem>(usageKey(userId, month), { consistent: true }))?.appRunningMinutes ?? 0;
const runningApps = async (userId: string) =>
  (await t.deps.store.get<CountsItem>(userCountsKey(userId), { consistent: true }))?.runningApps ?? 0;
const appItem = (userId: string, id: string) => t.deps.store.get<AppItem>(appKey(userId, id), { consistent: true });
const listed = async (userId: string, id: string) =>
  (await t.deps.store.get(meteredRunKey(userId, id), { consistent: true })) !== undefined;
/** Several periodic close-outs at once, as racing sweeps on several instances would run. */
const sweeps = (n = 3) => Promise.all(Array.from({ length: n }, () => closeOutRunningApps(t.deps)));

describe("running minutes, split by month", () => {
  it("counts whole minutes periodically and a started minute at the end; each minute in the month it starts", () => {
    expect(span(0, 59_999, false).minutes).toBe(0);
    expect(span(0, 59_999, true).minutes).toBe(1);
    expect(span(0, 60_001, true)).toMatchObject({ minutes: 2, until: 2 * MIN });
    expect(span(0, 0, true).minutes).toBe(0);
    const nye = Date.UTC(2030, 11, 31, 23, 58, 30);
    expect([...minutesByMonth(nye, 4)]).toEqual([
      ["2030-12", 2],
      ["2031-01", 2],
    ]);
    expect([...minutesByMonth(Date.UTC(2030, 0, 31, 0, 0), 60 * 24 * 30)]).toEqual([
      ["2030-01", 1440],
      ["2030-02", 28 * 1440],
      ["2030-03", 1440],
    ]);
  });

  it("splits a run across a month boundary, live minutes included (clock injected)", async () => {
    const o = await owner();
    const id = await o.makeApp("boundary");
    clockMs = Date.UTC(2030, 0, 31, 23, 50, 0);
    await o.start(id);
    clockMs = Date.UTC(2030, 1, 1, 0, 10, 30);
    // Not booked yet: shown as live minutes, in the month each one started.
    const live = async (month: string) =>
      (await t.json<Json>("GET", `/api/usage?month=${month}`, { token: o.token })).body;
    expect(await live("2030-01")).toMatchObject({ appRunningMinutes: 0, liveAppMinutes: 10 });
    expect(await live("2030-02")).toMatchObject({ appRunningMinutes: 0, liveAppMinutes: 11 });
    await sweeps();
    expect([await booked(o.userId, "2030-01"), await booked(o.userId, "2030-02")]).toEqual([10, 10]);
    expect(await live("2030-02")).toMatchObject({ appRunningMinutes: 10, liveAppMinutes: 1 });
    await o.stop(id);
    expect([await booked(o.userId, "2030-01"), await booked(o.userId, "2030-02")]).toEqual([10, 11]);
    expect(await live("2030-02")).toMatchObject({ appRunningMinutes: 11, liveAppMinutes: 0 });
  });
});

describe("running minutes are counted exactly once", () => {
  it("manual stop racing periodic close-outs", async () => {
    const o = await owner();
    const id = await o.makeApp("manual");
    await o.start(id);
    expect(await runningApps(o.userId)).toBe(1);
    expect(await listed(o.userId, id)).toBe(true);
    clockMs = T0 + 150_000;
    await sweeps();
    expect(await booked(o.userId)).toBe(2);
    clockMs = T0 + 200_000;
    await Promise.all([o.stop(id), sweeps()]);
    // 200 s: 2 whole minutes, then the started third and fourth: ceil(200 / 60) = 4, whoever booked what.
    expect(await booked(o.userId)).toBe(4);
    expect(await runningApps(o.userId)).toBe(0);
    expect(await listed(o.userId, id)).toBe(false);
    expect((await appItem(o.userId, id))?.meteredUntil).toBeUndefined();
    await sweeps();
    expect(await booked(o.userId)).toBe(4);
  });

  it("auto-stop", async () => {
    const o = await owner();
    const id = await o.makeApp("auto");
    expect((await o.post(`/api/apps/${id}/start`, { timeout: 0.03 })).status).toBe(202);
    await o.reaches(id, "running");
    clockMs = T0 + 5 * MIN + 10_000;
    // Sweeps keep racing the auto-stop until it has happened.
    let stopped = false;
    const racing = (async () => {
      while (!stopped) await sweeps(2);
    })();
    await o.reaches(id, "stopped");
    stopped = true;
    await racing;
    expect(await booked(o.userId)).toBe(6);
    expect(await runningApps(o.userId)).toBe(0);
  });

  it("a failed start books nothing and frees its slot; a failed stop books the run once", async () => {
    const o = await owner();
    const broken = await o.makeApp("broken", { start: "exit 3" });
    expect((await o.post(`/api/apps/${broken}/start`)).status).toBe(202);
    await o.reaches(broken, "error");
    expect(await runningApps(o.userId)).toBe(0);
    expect(await booked(o.userId)).toBe(0);

    const stuck = await o.makeApp("stuck", { stop: "exit 4" });
    await o.start(stuck);
    clockMs = T0 + 90_000;
    await o.stop(stuck, "error");
    expect(await booked(o.userId)).toBe(2);
    expect(await runningApps(o.userId)).toBe(0);
    await sweeps();
    expect(await booked(o.userId)).toBe(2);
    // Error → start → stop: a new run, booked on its own.
    await o.start(stuck);
    clockMs = T0 + 150_000;
    await o.post(`/api/apps/${stuck}/stop`);
    await o.reaches(stuck, "error");
    expect(await booked(o.userId)).toBe(3);
  });

  it("a run a deploy started", async () => {
    const o = await owner();
    const id = await o.makeApp("deployed");
    const dep = await o.post(`/api/apps/${id}/deployments`);
    expect(dep.status).toBe(202);
    const deployment = dep.body.deployment as { id: string };
    expect((await deploymentEnded(t, o.token, deployment.id)).status).toBe("succeeded");
    await o.reaches(id, "running");
    expect(await runningApps(o.userId)).toBe(1);
    expect((await appItem(o.userId, id))?.meteredUntil).toBe(T0);
    clockMs = T0 + 3 * MIN;
    // A deploy of the running app keeps its run (and its watermark).
    const again = await o.post(`/api/apps/${id}/deployments`);
    expect((await deploymentEnded(t, o.token, (again.body.deployment as { id: string }).id)).status).toBe("succeeded");
    await Promise.all([o.stop(id), sweeps()]);
    expect(await booked(o.userId)).toBe(3);
    expect(await runningApps(o.userId)).toBe(0);
  });

  it("force delete of a project with a running app", async () => {
    const o = await owner();
    const id = await o.makeApp("forced");
    await o.start(id);
    clockMs = T0 + 2 * MIN + 30_000;
    await sweeps();
    const res = await t.json<Json>("DELETE", `/api/projects/${o.projectId}?force=true`, { token: o.token });
    expect(res.status).toBe(200);
    expect(await booked(o.userId)).toBe(3);
    expect(await runningApps(o.userId)).toBe(0);
    expect(await listed(o.userId, id)).toBe(false);
    await sweeps();
    expect(await booked(o.userId)).toBe(3);
  });

  it("a restart of the embedded runtime books the time it was down, once", async () => {
    const o = await owner();
    const id = await o.makeApp("restarted");
    await o.start(id);
    await workers.stop();
    clockMs = T0 + 3 * MIN + 30_000;
    workers = await startWorkers(t.deps); // closes out at start: 3 whole minutes
    expect(await booked(o.userId)).toBe(3);
    clockMs = T0 + 4 * MIN;
    await o.stop(id);
    expect(await booked(o.userId)).toBe(4);
  });

  it("lists only runs of apps that are running", async () => {
    const shards = await Promise.all(
      Array.from({ length: RUN_SHARDS }, (_, s) => queryAll(t.deps.store, { pk: `RUNS#${s}`, consistent: true })),
    );
    const apps = await Promise.all(
      shards.flat().map((r) => appItem(String(r.ownerId), String(r.appId)).then((a) => a?.status)),
    );
    expect(apps.every((s) => s === "running")).toBe(true);
  });
});

describe("plan limits at start", () => {
  it("N+1 parallel starts against runningApps = N: exactly N start, one 402; a stop frees a slot", async () => {
    const o = await owner("small");
    const ids = await Promise.all(["a", "b", "c", "d"].map((n) => o.makeApp(`race-${n}`)));
    const answers = await Promise.all(ids.map((id) => o.post(`/api/apps/${id}/start`)));
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses).toEqual([202, 202, 202, 402]);
    const refused = answers.find((a) => a.status === 402);
    expect(refused?.body).toMatchObject({ limit: "runningApps", use: 3, allowed: 3, plan: "small" });
    expect(await runningApps(o.userId)).toBe(3);
    const started = ids.filter((_, i) => answers[i]?.status === 202);
    const left = ids.find((_, i) => answers[i]?.status === 402) as string;
    await Promise.all(started.map((id) => o.reaches(id, "running")));
    await o.stop(started[0] as string);
    expect(await runningApps(o.userId)).toBe(2);
    await o.start(left);
    expect(await runningApps(o.userId)).toBe(3);
    await Promise.all([...started.slice(1), left].map((id) => o.stop(id)));
    expect(await runningApps(o.userId)).toBe(0);
  });

  it("refuses a start once the month's appMinutes are used up (402 appMinutes)", async () => {
    const o = await owner("small");
    const id = await o.makeApp("spent");
    await t.deps.store.update(usageKey(o.userId, monthOf(T0)), {
      set: { entity: "usage" },
      add: { appRunningMinutes: 10 },
    });
    const res = await o.post(`/api/apps/${id}/start`);
    expect(res.status).toBe(402);
    expect(res.body).toMatchObject({ limit: "appMinutes", use: 10, allowed: 10, plan: "small" });
    expect((await appItem(o.userId, id))?.status).toBe("stopped");
    expect(await runningApps(o.userId)).toBe(0);
  });
});

describe("limit warnings", () => {
  it("pushes usage:<userId> and audits at 80 % and 100 % of appMinutes, once per threshold per month", async () => {
    const o = await owner("small");
    const posts: Json[] = [];
    const original = t.deps.broadcaster;
    const recording: Broadcaster = {
      post: async (_id, message) => {
        posts.push(message as Json);
        return "sent";
      },
      close: async () => undefined,
    };
    t.deps.broadcaster = recording;
    try {
      await subscribe(
        t.deps,
        { connectionId: `conn-${o.userId}`, userId: o.userId, expiresAt: 4e9 },
        `usage:${o.userId}`,
        0,
      );
      const id = await o.makeApp("warned");
      await o.start(id);
      clockMs = T0 + 8 * MIN + 30_000;
      await sweeps();
      await sweeps();
      expect(await booked(o.userId)).toBe(8);
      await eventually(async () => posts.length === 1);
      clockMs = T0 + 10 * MIN + 1_000;
      await o.stop(id); // books the last 3 started minutes: 11, over the limit
      expect(await booked(o.userId)).toBe(11);
      await eventually(async () => posts.length === 2);
      const month = monthOf(T0);
      expect(posts).toEqual([
        {
          type: "usage",
          userId: o.userId,
          limit: "appMinutes",
          threshold: 80,
          use: 8,
          allowed: 10,
          month,
          plan: "small",
        },
        {
          type: "usage",
          userId: o.userId,
          limit: "appMinutes",
          threshold: 100,
          use: 11,
          allowed: 10,
          month,
          plan: "small",
        },
      ]);
      const audit = await t.json<{ items: { details: Json }[] }>("GET", "/api/audit-logs?action=usage.warning", {
        token: o.token,
      });
      expect(audit.body.items.map((i) => i.details.threshold).sort()).toEqual([100, 80]);
      // Over the limit now: a start is refused, and no warning repeats.
      expect((await o.post(`/api/apps/${id}/start`)).status).toBe(402);
      await sweeps();
      expect(posts).toHaveLength(2);
    } finally {
      t.deps.broadcaster = original;
    }
  });
});
