import { type ChildProcess, spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdirSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fetchApi } from "@hoist/core/testing/fetch-api";
import { UNLIMITED_PLANS_FILE } from "@hoist/core/testing/plans";
import { startTestSshServer } from "@hoist/core/testing/ssh-server";

/**
 * The race-and-crash scenario of the deploy engine, against `npm start` as a
 * real process: apps on one repository (one per branch) receive signed pushes
 * (distinct SHAs plus redeliveries), some in flight at a time; the runtime is
 * killed with SIGKILL part way through and started again on the same data
 * directory; pushes that got no answer are redelivered, as GitHub's
 * "Redeliver" does. Then every acknowledged push must be exactly one
 * deployment, succeeded or cancelled as superseded (or failed as stranded by
 * the kill), none queued or running, and no two runs of one app overlapping
 * on the target. Shared by the test (small) and the bench (full size).
 */
export interface CrashScenarioOptions {
  apps: number;
  /** Distinct commits pushed. */
  distinct: number;
  /** Deliveries sent again (same delivery id and body). */
  redeliveries: number;
  concurrency: number;
  /** SIGKILL once this many pushes have been sent. */
  killAfter: number;
  leaseSeconds: number;
  /** How long each deploy command runs on the target. */
  runSeconds: number;
  /** Give up waiting for the drain after this long. */
  drainTimeoutSeconds: number;
}

export interface CrashScenarioReport {
  pushes: number;
  acknowledged: number;
  deployments: number;
  succeeded: number;
  cancelled: number;
  failed: number;
  stuck: number;
  /** Seconds from the restarted runtime being ready until the last deployment ended. */
  drainSeconds: number;
  /** Seconds from the restart until every push was acknowledged (the rest of the pushes being sent). */
  ingestSeconds: number;
  /** Seconds from the last acknowledgement until the last deployment ended. */
  tailSeconds: number;
  /** Everything that broke the promise; empty when it held. */
  problems: string[];
}

const ROOT = resolve(import.meta.dirname, "../../../..");
const SECRET = "crash-scenario-secret";
type Dep = {
  id: string;
  appId: string;
  status: string;
  error: string | null;
  commitSha: string | null;
  queuedAt: number;
};

interface Runtime {
  url: string;
  child: ChildProcess;
  exited: Promise<unknown>;
}

async function startHoist(dataDir: string, env: Record<string, string>): Promise<Runtime> {
  const child = spawn(process.execPath, ["--import", "tsx", "packages/local/src/main.ts"], {
    cwd: ROOT,
    env: { ...process.env, PORT: "0", HOIST_DATA_DIR: dataDir, HOIST_LOG_LEVEL: "error", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (d) => {
    output += d;
  });
  child.stderr?.on("data", (d) => {
    output = (output + d).slice(-20_000);
  });
  const exited = new Promise((r) => child.once("exit", r));
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && child.exitCode === null) {
    const port = /Health\s+http:\/\/127\.0\.0\.1:(\d+)\/health\/ready/.exec(output)?.[1];
    if (
      port &&
      (await fetch(`http://127.0.0.1:${port}/health/ready`).then(
        (r) => r.ok,
        () => false,
      ))
    )
      return { url: `http://127.0.0.1:${port}`, child, exited };
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill("SIGKILL");
  throw new Error(`Hoist did not become ready:\n${output}`);
}

export async function runCrashScenario(opts: CrashScenarioOptions): Promise<CrashScenarioReport> {
  const dataDir = await mkdtemp(join(tmpdir(), "hoist-crash-"));
  const ssh = await startTestSshServer();
  const env = {
    HOIST_GITHUB_WEBHOOK_SECRET: SECRET,
    HOIST_DEPLOY_LEASE_SECONDS: String(opts.leaseSeconds),
    HOIST_RATE_LIMIT_AUTH: "0",
    HOIST_RATE_LIMIT_API: "0",
    HOIST_STATUS_SWEEP_SECONDS: "0",
    HOIST_PLANS_FILE: UNLIMITED_PLANS_FILE,
  };
  let hoist = await startHoist(dataDir, env);
  try {
    const api = fetchApi(() => hoist.url);
    const reg = await api<{ token: string }>("POST", "/api/auth/register", undefined, {
      username: "crash",
      email: "crash@example.com",
      password: "correct horse battery staple",
    });
    const token = reg.body.token;
    const server = await api<{ id: string }>("POST", "/api/servers", token, {
      name: "box",
      address: ssh.host,
      sshPort: ssh.port,
      sshUser: ssh.username,
      privateKey: ssh.clientKey.private,
    });
    const project = await api<{ id: string }>("POST", "/api/projects", token, { name: "crash" });
    const branches = Array.from({ length: opts.apps }, (_, i) => `branch-${i}`);
    const appIds: string[] = [];
    for (const branch of branches) {
      const dir = join(ssh.cwd, branch);
      mkdirSync(dir);
      const app = await api<{ id: string }>("POST", "/api/apps", token, {
        name: branch,
        projectId: project.body.id,
        serverId: server.body.id,
        cdPath: dir,
        repository: { fullName: "acme/crash", branch, autoDeploy: true, deployOn: "push" },
        // Each run notes its start and end (ns) on the target: overlaps show there.
        commands: {
          deploy: `echo "start $HOIST_DEPLOYMENT_ID $(date +%s%N)" >> runs.log; sleep ${opts.runSeconds}; echo "end $HOIST_DEPLOYMENT_ID $(date +%s%N)" >> runs.log`,
        },
      });
      if (app.status !== 201) throw new Error(`app: ${app.status} ${JSON.stringify(app.body)}`);
      appIds.push(app.body.id);
    }

    // The deliveries: distinct commits round-robin over the branches, with some delivered twice.
    const deliveries = Array.from({ length: opts.distinct }, (_, i) => {
      const branch = branches[i % branches.length] as string;
      const sha = createHmac("sha1", "crash").update(String(i)).digest("hex");
      const body = JSON.stringify({
        ref: `refs/heads/${branch}`,
        after: sha,
        deleted: false,
        repository: { full_name: "acme/crash" },
        head_commit: { message: `commit ${i}`, author: { name: "dev" } },
      });
      return { id: `delivery-${i}`, body };
    });
    // Redeliveries spread evenly, each of a delivery sent a little earlier.
    const sends: typeof deliveries = [];
    const every = opts.redeliveries > 0 ? deliveries.length / opts.redeliveries : Number.POSITIVE_INFINITY;
    let again = 0;
    deliveries.forEach((d, i) => {
      sends.push(d);
      while (again < opts.redeliveries && (again + 1) * every <= i + 1) {
        sends.push(deliveries[Math.floor(i * 0.9)] as (typeof deliveries)[number]);
        again++;
      }
    });
    const problems: string[] = [];
    const acked = new Map<string, string[]>(); // delivery id → deployment ids
    const unanswered: typeof sends = [];
    const send = async (d: (typeof sends)[number]) => {
      try {
        const res = await fetch(`${hoist.url}/api/webhooks/github`, {
          method: "POST",
          headers: {
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": d.id,
            "X-Hub-Signature-256": `sha256=${createHmac("sha256", SECRET).update(d.body).digest("hex")}`,
          },
          body: d.body,
        });
        const answer = (await res.json()) as { deployments?: string[] };
        if (res.status === 503) throw new Error("in progress elsewhere: redeliver later");
        if (res.status !== 202) {
          problems.push(`${d.id} answered ${res.status}: ${JSON.stringify(answer)}`);
          return;
        }
        const ids = answer.deployments ?? [];
        const before = acked.get(d.id);
        if (before && JSON.stringify(before) !== JSON.stringify(ids))
          problems.push(`${d.id} answered ${ids} after ${before}`);
        acked.set(d.id, ids);
      } catch {
        unanswered.push(d); // the runtime died under it: GitHub would redeliver
      }
    };
    const pool = async (list: typeof sends, onSent?: (n: number) => void) => {
      let next = 0;
      let sent = 0;
      await Promise.all(
        Array.from({ length: opts.concurrency }, async () => {
          while (next < list.length) {
            const item = list[next++] as (typeof sends)[number];
            onSent?.(++sent);
            await send(item);
          }
        }),
      );
    };

    const before = sends.slice(0, opts.killAfter + opts.concurrency);
    const killed = pool(before, (n) => {
      if (n === opts.killAfter) hoist.child.kill("SIGKILL");
    });
    await killed;
    await hoist.exited;
    const rest = [...unanswered.splice(0), ...sends.slice(before.length)];
    hoist = await startHoist(dataDir, env);
    const restartedAt = Date.now();
    await pool(rest);
    while (unanswered.length > 0) {
      await new Promise((r) => setTimeout(r, 1000));
      await pool(unanswered.splice(0));
    }

    const allAckedAt = Date.now();
    // Drain: until every deployment of every app has ended.
    const listAll = async () => {
      const all: Dep[] = [];
      for (const appId of appIds) {
        let cursor: string | null = null;
        do {
          const page: { body: { items: Dep[]; nextCursor: string | null } } = await api(
            "GET",
            `/api/deployments?appId=${appId}&limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
            token,
          );
          all.push(...page.body.items);
          cursor = page.body.nextCursor;
        } while (cursor);
      }
      return all;
    };
    let deps = await listAll();
    const drainDeadline = Date.now() + opts.drainTimeoutSeconds * 1000;
    while (deps.some((d) => d.status === "queued" || d.status === "running") && Date.now() < drainDeadline) {
      await new Promise((r) => setTimeout(r, 250));
      deps = await listAll();
    }
    const lastEnd = Math.max(restartedAt, ...deps.map((d) => (d as Dep & { finishedAt: number }).finishedAt ?? 0));
    const drainSeconds = (lastEnd - restartedAt) / 1000;

    // Exactly once: every acknowledged delivery names deployments that exist, one per distinct commit.
    const byId = new Map(deps.map((d) => [d.id, d]));
    const named = new Set<string>();
    for (const [delivery, ids] of acked) {
      if (ids.length !== 1) problems.push(`${delivery} queued ${ids.length} deployments`);
      for (const id of ids) {
        if (!byId.has(id)) problems.push(`${delivery}: deployment ${id} does not exist`);
        named.add(id);
      }
    }
    if (acked.size !== deliveries.length) problems.push(`${deliveries.length - acked.size} pushes never acknowledged`);
    for (const d of deps) if (!named.has(d.id)) problems.push(`deployment ${d.id} belongs to no delivery (a double)`);
    const shas = deps.map((d) => d.commitSha);
    if (new Set(shas).size !== shas.length) problems.push("one commit was deployed by two deployments");
    for (const d of deps) {
      if (d.status === "failed" && !/stopped mid-run/.test(d.error ?? ""))
        problems.push(`deployment ${d.id} failed: ${d.error}`);
    }
    // The newest push of each app ran.
    for (const appId of appIds) {
      const newest = deps.filter((d) => d.appId === appId).sort((a, b) => b.queuedAt - a.queuedAt)[0];
      if (newest && newest.status !== "succeeded")
        problems.push(`app ${appId}: its newest deployment is ${newest.status}`);
    }
    // No overlapping runs per app: a run that starts while another (that ended) had not.
    for (const branch of branches) {
      const log = await readFile(join(ssh.cwd, branch, "runs.log"), "utf8").catch(() => "");
      const runs = new Map<string, { start: bigint; end?: bigint }>();
      for (const line of log.trim().split("\n").filter(Boolean)) {
        const [what, id, ns] = line.split(" ") as [string, string, string];
        const run = runs.get(id) ?? { start: 0n };
        if (what === "start") run.start = BigInt(ns);
        else run.end = BigInt(ns);
        runs.set(id, run);
      }
      const ended = [...runs.entries()].filter(([, r]) => r.end !== undefined);
      for (const [id, r] of runs) {
        for (const [other, o] of ended) {
          if (other !== id && r.start > o.start && r.start < (o.end as bigint))
            problems.push(`${branch}: run ${id} started while ${other} ran`);
        }
        if (r.end === undefined && byId.get(id)?.status !== "failed")
          problems.push(`${branch}: run ${id} never ended yet is ${byId.get(id)?.status}`);
      }
    }
    const count = (s: string) => deps.filter((d) => d.status === s).length;
    return {
      pushes: sends.length,
      acknowledged: acked.size,
      deployments: deps.length,
      succeeded: count("succeeded"),
      cancelled: count("cancelled"),
      failed: count("failed"),
      stuck: count("queued") + count("running"),
      drainSeconds,
      ingestSeconds: (allAckedAt - restartedAt) / 1000,
      tailSeconds: Math.max(0, (lastEnd - allAckedAt) / 1000),
      problems,
    };
  } finally {
    hoist.child.kill("SIGTERM");
    await hoist.exited;
    await ssh.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}
