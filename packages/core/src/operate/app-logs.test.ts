import { renameSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { composeLine, type Json, type OperateSetup, operateSetup } from "../testing/operate.ts";
import { eventually } from "../testing/workers.ts";
import { type TailLeaseItem, tailLeaseKey, tailLeases } from "./entity.ts";
import { restartLapsedTails } from "./tail-lease.ts";

let s: OperateSetup;
let n = 0;

beforeAll(async () => {
  s = await operateSetup({ HOIST_APP_LOG_IDLE_SECONDS: "1" });
}, 60_000);
afterAll(async () => {
  await s?.stop();
});

type Line = { ts: number; time: string; service: string; line: string };
const linesOf = (connectionId: string): Line[] =>
  s.broadcaster.of(connectionId, "app-log").flatMap((m) => m.lines as Line[]);
const texts = (connectionId: string) => linesOf(connectionId).map((l) => l.line);
const follows = () => s.ssh.commands.filter((c) => c.includes("docker compose logs") && c.includes("--follow")).length;
const lease = () => s.t.deps.store.get<TailLeaseItem>(tailLeaseKey(s.appId), { consistent: true });

/** A lease as a tail that died would have left it. */
const leaseItemFor = async (appId: string): Promise<TailLeaseItem> => ({
  ...tailLeaseKey(appId),
  ...tailLeases.index(appId),
  entity: "app-log-tail",
  appId,
  ownerId: s.owner.userId,
  holder: "dead",
  runner: "dead",
  leaseUntil: Date.now(),
  cursor: { since: new Date().toISOString(), services: {} },
  createdAt: Date.now(),
  expiresAt: Math.floor(Date.now() / 1000) + 3600,
});

async function subscriber(token = s.owner.token): Promise<string> {
  const id = `c${++n}`;
  expect(await s.connect(id, token)).toBe(200);
  await s.send(id, { action: "subscribe", channel: `app-logs:${s.appId}` });
  return id;
}
const leave = (id: string) => s.send(id, { action: "unsubscribe", channel: `app-logs:${s.appId}` });
/** Waits until no tail runs: no lease, no command alive on the server. */
const noTail = (timeoutMs = 5000) =>
  eventually(async () => !(await lease()) && s.ssh.liveCommands().length === 0, timeoutMs, "the tail to stop");

describe("GET /api/apps/:id/logs", () => {
  it("answers the last lines in time order, masked, from `since` on; refuses bad input and other tenants", async () => {
    const base = Date.parse("2024-06-01T10:00:00Z");
    s.append([
      composeLine("web-1", base, "booting"),
      composeLine("db-1", base + 1000, "ready"),
      composeLine("web-1", base + 2000, `token=${s.secret}`),
      composeLine("web-1", base + 3000, "listening"),
    ]);
    const res = await s.t.json<{ items: Line[]; truncated: boolean }>("GET", `/api/apps/${s.appId}/logs?tail=3`, {
      token: s.owner.token,
    });
    expect(res.status).toBe(200);
    expect(res.body.items.map((l) => [l.service, l.line])).toEqual([
      ["db-1", "ready"],
      ["web-1", "token=••••"],
      ["web-1", "listening"],
    ]);
    expect(res.body.items[0]).toMatchObject({ ts: base + 1000, time: "2024-06-01T10:00:01.000000000Z" });
    expect(JSON.stringify(res.body)).not.toContain(s.secret);

    const since = await s.t.json<{ items: Line[] }>("GET", `/api/apps/${s.appId}/logs?since=${base + 2000}`, {
      token: s.owner.token,
    });
    expect(since.body.items.map((l) => l.line)).toEqual(["token=••••", "listening"]);
    const rfc = await s.t.json<{ items: Line[] }>(
      "GET",
      `/api/apps/${s.appId}/logs?since=2024-06-01T10:00:03.000000000Z`,
      { token: s.owner.token },
    );
    expect(rfc.body.items.map((l) => l.line)).toEqual(["listening"]);

    for (const q of ["tail=0", "tail=5001", "since=yesterday", "since=1;id"]) {
      const bad = await s.t.json<Json>("GET", `/api/apps/${s.appId}/logs?${q}`, { token: s.owner.token });
      expect(bad.status, q).toBe(400);
    }
    const other = await s.t.register(`eve${Date.now().toString(36)}`);
    const theirs = await s.t.json<Json>("GET", `/api/apps/${s.appId}/logs`, { token: other.token });
    expect(theirs.status).toBe(404);

    // docker failing: a 502 naming its exit code and its last stderr lines.
    renameSync(join(s.appDir, "compose.log"), join(s.appDir, "compose.log.away"));
    try {
      const failed = await s.t.json<Json>("GET", `/api/apps/${s.appId}/logs`, { token: s.owner.token });
      expect(failed.status).toBe(502);
      expect(String(failed.body.detail)).toMatch(
        /^docker compose logs exited with 1 in .*: .*path: 'compose\.log'.*Node\.js/,
      );
    } finally {
      renameSync(join(s.appDir, "compose.log.away"), join(s.appDir, "compose.log"));
    }
  });
});

describe("channel app-logs:<appId>", () => {
  it("follows with one tail for every subscriber; one joining mid-stream gets every later line, in order", async () => {
    const before = follows();
    const first = await subscriber();
    await eventually(async () => follows() === before + 1, 5000, "the tail command");
    const t0 = Date.now() + 500;
    s.append([1, 2, 3, 4, 5].map((i) => composeLine("web-1", t0 + i, `early ${i} ${s.secret}`)));
    await eventually(async () => texts(first).length === 5, 5000, "the first lines");

    const second = await subscriber();
    const third = await subscriber();
    s.append([6, 7, 8, 9, 10].map((i) => composeLine(i % 2 ? "db-1" : "web-1", t0 + i, `late ${i}`)));
    await eventually(async () => texts(first).length === 10 && texts(third).length === 5, 5000, "the later lines");

    expect(texts(first)).toEqual([
      ...[1, 2, 3, 4, 5].map((i) => `early ${i} ••••`),
      ...[6, 7, 8, 9, 10].map((i) => `late ${i}`),
    ]);
    expect(texts(second)).toEqual([6, 7, 8, 9, 10].map((i) => `late ${i}`));
    expect(texts(third)).toEqual(texts(second));
    expect(linesOf(second).map((l) => l.service)).toEqual(["web-1", "db-1", "web-1", "db-1", "web-1"]);
    // One tail, however many subscribers.
    expect(follows()).toBe(before + 1);
    expect(s.ssh.liveCommands()).toHaveLength(1);
    expect(s.broadcaster.of(first, "app-log")[0]).toMatchObject({ type: "app-log", appId: s.appId });

    // The last subscriber leaving ends it within one idle interval (1 s here); a new subscribe starts it again.
    await leave(first);
    await leave(second);
    await new Promise((r) => setTimeout(r, 1500));
    expect(s.ssh.liveCommands()).toHaveLength(1); // one subscriber is still there
    await leave(third);
    const left = Date.now();
    await noTail();
    const stoppedAfter = Date.now() - left;
    expect(stoppedAfter).toBeLessThan(1000 + 1500); // one idle interval, plus the command's TERM and the poll

    const again = await subscriber();
    await eventually(async () => follows() === before + 2, 5000, "a new tail command");
    s.append([composeLine("web-1", Date.now() + 500, "after restart")]);
    await eventually(async () => texts(again).includes("after restart"), 5000, "a line after the restart");
    expect(texts(again)).toEqual(["after restart"]);
    await leave(again);
    await noTail();
  });

  it("refuses another tenant's app-logs channel, and starts no tail for it", async () => {
    const other = await s.t.register(`mal${Date.now().toString(36)}`);
    const before = follows();
    const id = await subscriber(other.token);
    expect(s.broadcaster.of(id).at(-1)).toMatchObject({ type: "error" });
    await new Promise((r) => setTimeout(r, 300));
    expect(follows()).toBe(before);
    expect(await lease()).toBeUndefined();
  });

  it("restarts a tail whose job died from the status sweep, resuming where it left off", async () => {
    const before = follows();
    const id = await subscriber();
    await eventually(async () => follows() === before + 1, 5000, "the tail command");
    const t0 = Date.now() + 500;
    s.append([1, 2, 3].map((i) => composeLine("web-1", t0 + i, `before ${i}`)));
    await eventually(async () => texts(id).length === 3, 5000, "the first lines");
    // Once renewed with that cursor, the run "dies": its lease lapses under another runner, so it stops (lost).
    await eventually(async () => ((await lease())?.cursor.services["web-1"]?.seen.length ?? 0) > 0, 5000, "a renewal");
    await s.t.deps.store.update(tailLeaseKey(s.appId), { set: { runner: "dead", leaseUntil: Date.now() - 1 } });
    await eventually(async () => s.ssh.liveCommands().length === 0, 5000, "the dead run's command to end");
    s.append([composeLine("web-1", t0 + 4, "while down")]);

    expect(await restartLapsedTails(s.t.deps)).toBe(1);
    await eventually(async () => follows() === before + 2, 5000, "the restarted tail");
    s.append([composeLine("web-1", t0 + 5, "after")]);
    await eventually(async () => texts(id).includes("after"), 5000, "a line after the restart");
    expect(texts(id)).toEqual(["before 1", "before 2", "before 3", "while down", "after"]);

    // A lapsed lease nobody listens to any more is removed, not restarted.
    await leave(id);
    await noTail();
    await s.t.deps.store.put({
      ...(await leaseItemFor(s.appId)),
      leaseUntil: Date.now() - 1,
    });
    expect(await restartLapsedTails(s.t.deps)).toBe(0);
    expect(await lease()).toBeUndefined();
    expect(follows()).toBe(before + 2);
  });

  it("hands over between slices with lines arriving all along: every line exactly once, in order", async () => {
    s.t.deps.config.operate.tailSliceMs = 1000;
    try {
      const before = follows();
      const id = await subscriber();
      await eventually(async () => follows() === before + 1, 5000, "the tail command");
      // Times in steps of 300 ms, so many lines share one time, also across each seam; two containers interleaved.
      const start = Date.now();
      const base = start + 1000;
      const written: string[] = [];
      for (let i = 0; Date.now() - start < 2600; i++) {
        const text = `line ${i}`;
        s.append([composeLine(i % 3 ? "web-1" : "db-1", base + Math.floor((Date.now() - start) / 300) * 300, text)]);
        written.push(text);
        await new Promise((r) => setTimeout(r, 15));
      }
      await eventually(async () => texts(id).length >= written.length, 10_000, "every line");
      await new Promise((r) => setTimeout(r, 300)); // and no duplicate after the last
      expect(texts(id)).toEqual(written);
      expect(follows() - before).toBeGreaterThanOrEqual(3); // handed over at least twice
      await leave(id);
      await noTail();
    } finally {
      s.t.deps.config.operate.tailSliceMs = 600_000;
    }
  });
});
