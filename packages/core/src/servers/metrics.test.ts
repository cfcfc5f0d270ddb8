import { execFileSync } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broadcaster } from "../ports.ts";
import { subscribe } from "../realtime/subscribe.ts";
import { type TestClient, testClient } from "../testing/http.ts";
import { startTestSshServer, type TestSshServer } from "../testing/ssh-server.ts";
import type { MetricsPoint } from "./metrics.ts";
import { metricsPoints } from "./metrics-entity.ts";
import { sweepServers } from "./status.ts";

/**
 * Metrics over a real loopback SSH server whose commands run on this machine:
 * what the API reads must agree with this machine's own /proc and df.
 * Docker is a stand-in placed first on PATH (working, or failing as a
 * docker CLI without a daemon does).
 */

let t: TestClient;
let bin: string;
let withDocker: TestSshServer;
let noDaemon: TestSshServer;
let alice: { token: string; id: string };
let bob: { token: string; id: string };
let dockerServer: string;
let plainServer: string;

const DOCKER_LINES = [
  '{"BlockIO":"0B / 0B","CPUPerc":"1.25%","Container":"a1","ID":"a1","MemPerc":"0.63%","MemUsage":"12.5MiB / 1.94GiB","Name":"web","NetIO":"1.2kB / 0B","PIDs":"5"}',
  '{"BlockIO":"0B / 0B","CPUPerc":"102.50%","Container":"b2","ID":"b2","MemPerc":"3.10%","MemUsage":"1.5GiB / 7.7GiB","Name":"db","NetIO":"0B / 0B","PIDs":"31"}',
];

async function standIn(dir: string, script: string) {
  await writeFile(join(dir, "docker"), `#!/bin/sh\n${script}\n`);
  await chmod(join(dir, "docker"), 0o755);
}

beforeAll(async () => {
  t = await testClient();
  bin = await mkdtemp(join(tmpdir(), "hoist-metrics-"));
  const good = join(bin, "good");
  const failing = join(bin, "failing");
  execFileSync("mkdir", [good, failing]);
  await standIn(good, `[ "$1 $2" = "stats --no-stream" ] || exit 2\ncat <<'EOF'\n${DOCKER_LINES.join("\n")}\nEOF`);
  await standIn(
    failing,
    `echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2\nexit 1`,
  );
  [withDocker, noDaemon] = await Promise.all([
    startTestSshServer({ pathPrefix: [good] }),
    startTestSshServer({ pathPrefix: [failing] }),
  ]);
  const a = await t.register("alice");
  const b = await t.register("bob");
  alice = { token: a.token, id: a.user.id };
  bob = { token: b.token, id: b.user.id };
  const add = async (name: string, s: TestSshServer) => {
    const res = await t.json<{ id: string }>("POST", "/api/servers", {
      token: alice.token,
      body: { name, address: s.host, sshPort: s.port, sshUser: s.username, privateKey: s.clientKey.private },
    });
    expect(res.status).toBe(201);
    return res.body.id;
  };
  dockerServer = await add("with-docker", withDocker);
  plainServer = await add("no-daemon", noDaemon);
});

afterAll(async () => {
  await withDocker?.stop();
  await noDaemon?.stop();
  if (bin) await rm(bin, { recursive: true, force: true });
});

const meminfo = async () => {
  const text = await readFile("/proc/meminfo", "utf8");
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB$`, "m").exec(text)?.[1]);
  return { total: kb("MemTotal") * 1024, used: (kb("MemTotal") - kb("MemAvailable")) * 1024 };
};
const dfRoot = () => {
  const fields = execFileSync("df", ["-Pk", "/"], { env: { LC_ALL: "C", PATH: process.env.PATH } })
    .toString()
    .trim()
    .split("\n")[1]
    ?.split(/\s+/);
  return { total: Number(fields?.[1]) * 1024, used: Number(fields?.[2]) * 1024 };
};

describe("GET /api/servers/:id/metrics", () => {
  it("reads this machine's /proc and df over SSH, in one command", async () => {
    const before = Date.now();
    const commandsBefore = noDaemon.commands.length;
    const res = await t.json<MetricsPoint>("GET", `/api/servers/${plainServer}/metrics`, { token: alice.token });
    const after = Date.now();
    expect(res.status).toBe(200);
    expect(noDaemon.commands.length - commandsBefore).toBe(1);
    const m = res.body;

    const mem = await meminfo();
    expect(m.memory.totalBytes).toBe(mem.total);
    expect(Math.abs(m.memory.usedBytes - mem.used)).toBeLessThan(Math.max(512 * 2 ** 20, mem.total * 0.1));

    const root = dfRoot();
    const disk = m.disks.find((d) => d.mount === "/");
    expect(disk?.totalBytes).toBe(root.total);
    expect(Math.abs((disk?.usedBytes ?? 0) - root.used)).toBeLessThan(2 * 2 ** 30);
    // No pseudo filesystems, one mount per device.
    const mountTypes = new Map(
      (await readFile("/proc/mounts", "utf8")).split("\n").map((l) => [l.split(" ")[1], l.split(" ")[2]]),
    );
    for (const d of m.disks)
      expect(["tmpfs", "devtmpfs", "overlay", "squashfs"]).not.toContain(mountTypes.get(d.mount));

    expect(m.cpuPercent).toBeGreaterThanOrEqual(0);
    expect(m.cpuPercent).toBeLessThanOrEqual(100);
    const load = (await readFile("/proc/loadavg", "utf8")).split(" ").slice(0, 3).map(Number);
    for (const [i, l] of m.load.entries()) {
      const expected = load[i] ?? 0;
      expect(Math.abs(l - expected)).toBeLessThanOrEqual(Math.max(1.5, expected * 0.5));
    }

    expect(m.containers).toEqual([]); // a docker CLI without a daemon: no containers, not an error
    expect(m.at).toBeGreaterThanOrEqual(before);
    expect(m.at).toBeLessThanOrEqual(after);
  });

  it("parses docker stats of the running containers; /status reads the same command", async () => {
    const res = await t.json<MetricsPoint>("GET", `/api/servers/${dockerServer}/metrics`, { token: alice.token });
    expect(res.status).toBe(200);
    expect(res.body.containers).toEqual([
      { name: "web", cpuPercent: 1.25, memoryBytes: Math.round(12.5 * 2 ** 20) },
      { name: "db", cpuPercent: 102.5, memoryBytes: Math.round(1.5 * 2 ** 30) },
    ]);
    const commandsBefore = withDocker.commands.length;
    const status = await t.json("GET", `/api/servers/${dockerServer}/status`, { token: alice.token });
    expect(status.body).toMatchObject({ status: "online", runningContainers: 2, uptime: expect.any(Number) });
    expect(withDocker.commands.length - commandsBefore).toBe(1);
  });

  it("is 404 for another tenant's server, 502 for an unreachable one", async () => {
    for (const path of [`/api/servers/${dockerServer}/metrics`, `/api/servers/${dockerServer}/metrics/history`]) {
      const res = await t.json("GET", path, { token: bob.token });
      expect(res.status, path).toBe(404);
    }
    const gone = await startTestSshServer();
    await gone.stop();
    const dead = await t.json<{ id: string }>("POST", "/api/servers", {
      token: bob.token,
      body: {
        name: "gone",
        address: "127.0.0.1",
        sshPort: gone.port,
        sshUser: "deploy",
        privateKey: gone.clientKey.private,
      },
    });
    const res = await t.json<{ type: string; status: number }>("GET", `/api/servers/${dead.body.id}/metrics`, {
      token: bob.token,
    });
    expect(res.status).toBe(502);
    expect(res.res.headers.get("content-type")).toContain("application/problem+json");
    expect(res.body.type).toContain("ssh_refused");
    const del = await t.json("DELETE", `/api/servers/${dead.body.id}`, { token: bob.token });
    expect(del.status).toBe(200); // so the sweep below does not try it
  });
});

describe("the status sweep", () => {
  it("stores one point per reachable server and pushes it to server:<id>", async () => {
    const posts: { connectionId: string; message: unknown }[] = [];
    const original = t.deps.broadcaster;
    const recording: Broadcaster = {
      close: async () => {},
      post: async (connectionId, message) => {
        posts.push({ connectionId, message });
        return "sent";
      },
    };
    t.deps.broadcaster = recording;
    try {
      const expiresAt = Math.floor(Date.now() / 1000) + 600;
      await subscribe(t.deps, { connectionId: "conn-1", userId: alice.id, expiresAt }, `server:${dockerServer}`, 0);
      const from = Date.now();
      const result = await sweepServers(t.deps);
      expect(result).toMatchObject({ checked: 2, online: 2, offline: 0 });

      for (const id of [dockerServer, plainServer]) {
        const history = await t.json<{ items: MetricsPoint[] }>(
          "GET",
          `/api/servers/${id}/metrics/history?from=${from}`,
          { token: alice.token },
        );
        expect(history.status).toBe(200);
        expect(history.body.items).toHaveLength(1);
      }
      const history = await t.json<{ items: MetricsPoint[] }>(
        "GET",
        `/api/servers/${dockerServer}/metrics/history?from=${from}`,
        { token: alice.token },
      );
      const [point] = history.body.items;
      expect(point?.containers.map((c) => c.name)).toEqual(["web", "db"]);
      expect(posts).toEqual([{ connectionId: "conn-1", message: { type: "metrics", serverId: dockerServer, point } }]);
    } finally {
      t.deps.broadcaster = original;
    }
  });
});

describe("GET /api/servers/:id/metrics/history", () => {
  // Three days ago: within the 7-day TTL, outside the default 24 h window.
  const base = Math.floor((Date.now() - 3 * 24 * 3600_000) / 60_000) * 60_000;
  const point = (i: number): MetricsPoint => ({
    cpuPercent: i,
    memory: { totalBytes: 1000, usedBytes: i },
    disks: [{ mount: "/", totalBytes: 100, usedBytes: i }],
    load: [i / 10, 0, 0],
    containers: [],
    at: base + i * 60_000,
  });
  const history = (query: string, token = alice.token) =>
    t.json<{ items: MetricsPoint[]; nextCursor: string | null }>(
      "GET",
      `/api/servers/${plainServer}/metrics/history${query}`,
      { token },
    );

  beforeAll(async () => {
    await Promise.all(
      Array.from({ length: 45 }, (_, i) => metricsPoints.put(t.deps.store, alice.id, plainServer, point(i))),
    );
  });

  it("pages 45 points 20 at a time, oldest first", async () => {
    const window = `from=${base}&to=${base + 44 * 60_000}`;
    const seen: number[] = [];
    let cursor: string | null = null;
    const sizes: number[] = [];
    do {
      const res = await history(`?${window}&limit=20${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      expect(res.status).toBe(200);
      sizes.push(res.body.items.length);
      seen.push(...res.body.items.map((p) => p.cpuPercent));
      cursor = res.body.nextCursor;
    } while (cursor);
    expect(sizes).toEqual([20, 20, 5]);
    expect(seen).toEqual(Array.from({ length: 45 }, (_, i) => i));
    expect((await history(`?${window}&limit=1`)).body.items[0]).toEqual(point(0));
  });

  it("filters by from and to (inclusive); the default window is the last 24 h", async () => {
    const res = await history(`?from=${base + 10 * 60_000}&to=${base + 14 * 60_000}`);
    expect(res.body.items.map((p) => p.cpuPercent)).toEqual([10, 11, 12, 13, 14]);
    expect(res.body.nextCursor).toBeNull();
    const onlyTo = await history(`?to=${base + 2 * 60_000}`);
    expect(onlyTo.body.items.map((p) => p.cpuPercent)).toEqual([0, 1, 2]);
    const dflt = await history("");
    expect(dflt.status).toBe(200);
    expect(dflt.body.items.length).toBeGreaterThan(0); // the sweep's point
    expect(dflt.body.items.every((p) => p.at >= Date.now() - 24 * 3600_000)).toBe(true);
  });

  it("refuses bad queries and cursors with a 400", async () => {
    const first = await history(`?from=${base}&to=${base + 44 * 60_000}&limit=20`);
    const cursor = first.body.nextCursor ?? "";
    const tampered = `${cursor.slice(0, 5)}${cursor[5] === "A" ? "B" : "A"}${cursor.slice(6)}`;
    const cases = [
      `?from=${base}&to=${base + 44 * 60_000}&cursor=${encodeURIComponent(tampered)}`,
      "?cursor=not-a-cursor",
      `?from=${base + 1}&to=${base}`,
      `?from=${Date.now() + 3600_000}`, // after `to` (now)
      "?from=yesterday",
      "?limit=0",
      "?limit=101",
      "?since=0",
      // A cursor of this list but another window.
      `?from=${base + 30 * 60_000}&to=${base + 44 * 60_000}&cursor=${encodeURIComponent(cursor)}`,
    ];
    for (const query of cases) {
      const res = await history(query);
      expect(res.status, query).toBe(400);
      expect(res.res.headers.get("content-type"), query).toContain("application/problem+json");
    }
    // Another server's cursor does not read this one.
    const other = await t.json<{ nextCursor: string | null }>(
      "GET",
      `/api/servers/${dockerServer}/metrics/history?from=${base}&to=${base + 44 * 60_000}&limit=20&cursor=${encodeURIComponent(cursor)}`,
      { token: alice.token },
    );
    expect(other.status).toBe(400);
  });
});
