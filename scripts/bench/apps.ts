/**
 * The app lifecycle and the server status sweep against real SSH: loopback SSH
 * servers (ssh2's Server, commands run by /bin/sh) and the embedded runtime
 * started in this process, driven over HTTP.
 *
 * (a) POST start → `running` → POST stop → `stopped`, polled over HTTP; the
 *     executor is wrapped (timing only) to show where the time goes.
 * (b) sweepServers over 45 reachable servers, then over 50 with 5 unreachable
 *     (2 refused, 3 that accept TCP and never speak SSH → connect timeout).
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Executor } from "@hoist/core/servers/ssh";
import { sweepServers } from "@hoist/core/servers/status";
import { startTestSshServer, type TestSshServer } from "@hoist/core/testing/ssh-server";
import { api, type Embedded, registerUser, startEmbedded } from "./auth.ts";
import { freePort, ms, removeDir, type Suite, type Summary, sleep, summarize, type Table, tempDir } from "./lib.ts";

const ROUND_TRIPS = 30;
const POLL_MS = 5;
const POLL_TIMEOUT_MS = 15_000;
const CONNECT_TIMEOUT_SECONDS = 2;
const SWEEP_CONCURRENCY = 16; // sweepServers' default, passed explicitly so the table says what ran
const SSH_SERVERS = 5;
const PER_SSH_SERVER = 9;
const REFUSED = 2;
const STALLED = 3;
const SWEEPS = 3;

interface Trip {
  startToRunning: number;
  stopToStopped: number;
  roundTrip: number;
  /** POST start sent → the worker's SSH exec began (HTTP + queue wake-up + claim + job reads). */
  startQueue: number;
  /** The start command's SSH exec: connect, handshake, auth, run, close. */
  startExec: number;
  /** Exec done → `running` seen by the poller (status writes + poll granularity). */
  startAfter: number;
  stopQueue: number;
  stopExec: number;
  stopAfter: number;
  polls: number;
}

interface Sweep {
  label: string;
  checked: number;
  online: number;
  offline: number;
  ms: number;
  /** Sweep start → the last reachable server's check ended. */
  reachableDoneMs: number;
  /** Sweep start → the last stalled server's check began (a worker picked it up). */
  lastStalledPickedMs: number | undefined;
}

export const apps: Suite = {
  name: "apps",
  description: "app start/stop round trip over loopback SSH, and the status sweep with unreachable servers",
  async run(ctx) {
    const sshServers: TestSshServer[] = [];
    const sshDirs: string[] = [];
    const sshDir = async () => {
      const dir = await tempDir("ssh");
      sshDirs.push(dir);
      return dir;
    };
    let embedded: Embedded | undefined;
    const trips: Trip[] = [];
    const sweeps: Sweep[] = [];
    let offlineKinds: Record<string, number> = {};
    let config = { connectTimeoutMs: Number.NaN, statusTimeoutMs: Number.NaN };
    try {
      ctx.log("starting the embedded runtime and a loopback SSH server…");
      embedded = await startEmbedded({ HOIST_SSH_CONNECT_TIMEOUT_SECONDS: String(CONNECT_TIMEOUT_SECONDS) });
      const base = embedded.url;
      const deps = embedded.runtime.deps;
      config = { connectTimeoutMs: deps.config.ssh.connectTimeoutMs, statusTimeoutMs: deps.config.ssh.statusTimeoutMs };
      const ssh = await startTestSshServer({ cwd: await sshDir() });
      sshServers.push(ssh);
      const { token } = await registerUser(base, "bench");
      const call = <T = Record<string, unknown>>(method: string, path: string, body?: unknown, expect?: number) =>
        api<T>(base, method, path, { token, body, expect });

      // Timing only: when each SSH exec begins and ends (the worker reads deps.executor at call time).
      const inner: Executor = deps.executor;
      const execs: { begin: number; end: number; port: number }[] = [];
      deps.executor = {
        async exec(target, script, opts) {
          const begin = performance.now();
          try {
            return await inner.exec(target, script, opts);
          } finally {
            execs.push({ begin, end: performance.now(), port: target.port });
          }
        },
      };

      // ───────── (a) start/stop round trips ─────────
      const serverId = (
        await call<{ id: string }>("POST", "/api/servers", {
          name: "box",
          address: ssh.host,
          sshPort: ssh.port,
          sshUser: ssh.username,
          privateKey: ssh.clientKey.private,
        })
      ).id;
      const projectId = (await call<{ id: string }>("POST", "/api/projects", { name: "shop" })).id;
      const cdPath = join(ssh.cwd, "web");
      await mkdir(cdPath, { recursive: true });
      const appId = (
        await call<{ id: string }>("POST", "/api/apps", {
          name: "web",
          projectId,
          serverId,
          cdPath,
          commands: { start: "echo started", stop: "echo stopped" },
        })
      ).id;

      let polls = 0;
      const waitFor = async (want: string) => {
        const deadline = performance.now() + POLL_TIMEOUT_MS;
        for (;;) {
          polls++;
          const app = await call<{ status: string; lastError: unknown }>("GET", `/api/apps/${appId}`);
          if (app.status === want) return performance.now();
          if (app.status === "error") throw new Error(`app went to error: ${JSON.stringify(app.lastError)}`);
          if (performance.now() > deadline) throw new Error(`app not ${want} within ${POLL_TIMEOUT_MS} ms`);
          await sleep(POLL_MS);
        }
      };
      const lastExec = (after: number) => {
        const e = execs.find((x) => x.begin >= after);
        if (!e) throw new Error("no SSH exec recorded for this transition");
        return e;
      };

      ctx.log(`${ROUND_TRIPS + 2} start/stop round trips (2 warm-up), polling every ${POLL_MS} ms…`);
      for (let i = 0; i < ROUND_TRIPS + 2; i++) {
        polls = 0;
        const t0 = performance.now();
        await call("POST", `/api/apps/${appId}/start`, undefined, 202);
        const running = await waitFor("running");
        const t1 = performance.now();
        await call("POST", `/api/apps/${appId}/stop`, undefined, 202);
        const stopped = await waitFor("stopped");
        if (i < 2) continue;
        const s = lastExec(t0);
        const p = lastExec(t1);
        trips.push({
          startToRunning: running - t0,
          stopToStopped: stopped - t1,
          roundTrip: stopped - t0,
          startQueue: s.begin - t0,
          startExec: s.end - s.begin,
          startAfter: running - s.end,
          stopQueue: p.begin - t1,
          stopExec: p.end - p.begin,
          stopAfter: stopped - p.end,
          polls,
        });
      }
      // Leave only the sweep's servers in the table.
      await call("DELETE", `/api/apps/${appId}`);
      await call("DELETE", `/api/servers/${serverId}`);

      // ───────── (b) the status sweep ─────────
      ctx.log(`starting ${SSH_SERVERS - 1} more SSH servers and one that never speaks SSH…`);
      for (let i = 1; i < SSH_SERVERS; i++) sshServers.push(await startTestSshServer({ cwd: await sshDir() }));
      const staller = await startTestSshServer({ cwd: await sshDir(), stallHandshake: true });
      sshServers.push(staller);
      const closedPort = await freePort(); // nothing listens there

      ctx.log(`registering ${SSH_SERVERS * PER_SSH_SERVER} reachable servers…`);
      for (const [i, s] of sshServers.slice(0, SSH_SERVERS).entries()) {
        for (let j = 0; j < PER_SSH_SERVER; j++) {
          await call("POST", "/api/servers", {
            name: `ok-${i}-${j}`,
            address: s.host,
            sshPort: s.port,
            sshUser: s.username,
            privateKey: s.clientKey.private,
          });
        }
      }
      const sweep = async (label: string) => {
        const t0 = performance.now();
        const r = await sweepServers(deps, SWEEP_CONCURRENCY);
        const mine = execs.filter((e) => e.begin >= t0);
        const stalled = mine.filter((e) => e.port === staller.port);
        const ok = mine.filter((e) => e.port !== staller.port && e.port !== closedPort);
        sweeps.push({
          label,
          ...r,
          reachableDoneMs: Math.max(...ok.map((e) => e.end - t0)),
          lastStalledPickedMs: stalled.length ? Math.max(...stalled.map((e) => e.begin - t0)) : undefined,
        });
        ctx.log(`${label}: ${r.checked} checked, ${r.online} online, ${r.ms} ms`);
      };
      const reachable = SSH_SERVERS * PER_SSH_SERVER;
      await sweep(`${reachable} reachable, 1st (pins host keys)`);
      for (let i = 2; i <= SWEEPS; i++) await sweep(`${reachable} reachable, #${i}`);

      ctx.log(`registering ${REFUSED} refused + ${STALLED} stalled servers…`);
      const key = ssh.clientKey.private;
      for (let i = 0; i < REFUSED; i++)
        await call("POST", "/api/servers", {
          name: `refused-${i}`,
          address: "127.0.0.1",
          sshPort: closedPort,
          sshUser: "deploy",
          privateKey: key,
        });
      for (let i = 0; i < STALLED; i++)
        await call("POST", "/api/servers", {
          name: `stalled-${i}`,
          address: staller.host,
          sshPort: staller.port,
          sshUser: "deploy",
          privateKey: key,
        });
      for (let i = 1; i <= SWEEPS; i++) await sweep(`${reachable} + ${REFUSED + STALLED} unreachable, #${i}`);

      const all = await call<{ status: string; lastError: { kind: string } | null }[]>(
        "GET",
        "/api/servers?format=array",
      );
      offlineKinds = {};
      for (const s of all.filter((x) => x.status !== "online")) {
        const kind = s.lastError?.kind ?? s.status;
        offlineKinds[kind] = (offlineKinds[kind] ?? 0) + 1;
      }
    } finally {
      ctx.log("stopping SSH servers and the runtime…");
      await Promise.allSettled(sshServers.map((s) => s.stop()));
      await embedded?.stop();
      for (const dir of sshDirs) await removeDir(dir);
    }

    const s = (f: (t: Trip) => number): Summary => summarize(trips.map(f));
    const row = (label: string, f: (t: Trip) => number) => {
      const x = s(f);
      return [label, ms(x.p50), ms(x.p95), ms(x.p99), ms(x.min), ms(x.max)];
    };
    const lifecycle: Table = {
      title: `apps — start/stop round trip over loopback SSH (${trips.length} iterations after 2 warm-up, GET /api/apps/:id every ${POLL_MS} ms)`,
      columns: ["phase", "p50 ms", "p95 ms", "p99 ms", "min ms", "max ms"],
      rows: [
        row("POST start → running", (t) => t.startToRunning),
        row("  POST → SSH exec begins", (t) => t.startQueue),
        row("  SSH exec (start command)", (t) => t.startExec),
        row("  exec done → running seen", (t) => t.startAfter),
        row("POST stop → stopped", (t) => t.stopToStopped),
        row("  POST → SSH exec begins", (t) => t.stopQueue),
        row("  SSH exec (stop command)", (t) => t.stopExec),
        row("  exec done → stopped seen", (t) => t.stopAfter),
        row("round trip", (t) => t.roundTrip),
      ],
      notes: [
        `Polls per round trip: median ${ms(summarize(trips.map((t) => t.polls)).p50)}. Each SSH exec is a channel on the server's warm connection (its handshake paid in the warm-up), .env from stdin, /bin/sh.`,
        "Queue: TableQueue on DynamoDB Local, woken in-process by the send; SSH server and runtime share this process.",
      ],
    };
    const timeoutMs = config.connectTimeoutMs;
    const unreachableSweeps = sweeps.filter((x) => x.offline > 0);
    const sweepTable: Table = {
      title: `apps — sweepServers(deps, ${SWEEP_CONCURRENCY}) over ${SSH_SERVERS} loopback SSH servers × ${PER_SSH_SERVER} Hoist servers (+ ${REFUSED} refused, ${STALLED} stalled)`,
      columns: ["sweep", "checked", "online", "offline", "total ms", "reachable done ms", "last stalled picked ms"],
      rows: sweeps.map((x) => [
        x.label,
        x.checked,
        x.online,
        x.offline,
        x.ms,
        ms(x.reachableDoneMs),
        x.lastStalledPickedMs === undefined ? "–" : ms(x.lastStalledPickedMs),
      ]),
      notes: [
        `Connect timeout ${timeoutMs} ms (HOIST_SSH_CONNECT_TIMEOUT_SECONDS=${CONNECT_TIMEOUT_SECONDS}), status timeout ${config.statusTimeoutMs} ms, concurrency ${SWEEP_CONCURRENCY}.`,
        `Offline after the last sweep: ${
          Object.entries(offlineKinds)
            .map(([k, n]) => `${k} ×${n}`)
            .join(", ") || "none"
        }.`,
        `With the stalled ones: median ${ms(summarize(unreachableSweeps.map((x) => x.ms)).p50)} ms = ${(
          summarize(unreachableSweeps.map((x) => x.ms)).p50 / timeoutMs
        ).toFixed(
          2,
        )}× one connect timeout (the ${STALLED} stalled ones one after another: ≥ ${STALLED * timeoutMs} ms).`,
        "The stalled checks wait in parallel: a sweep ends ≈ one connect timeout after the last stalled server is picked up (its place in the shard order), while the other workers finish the reachable ones.",
      ],
    };
    return {
      tables: [lifecycle, sweepTable],
      data: {
        roundTrips: trips,
        summary: {
          startToRunning: s((t) => t.startToRunning),
          stopToStopped: s((t) => t.stopToStopped),
          roundTrip: s((t) => t.roundTrip),
        },
        sweeps,
        offlineKinds,
        connectTimeoutMs: timeoutMs,
        statusTimeoutMs: config.statusTimeoutMs,
        sweepConcurrency: SWEEP_CONCURRENCY,
      },
    };
  },
};
