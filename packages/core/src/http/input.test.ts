import { beforeAll, describe, expect, it } from "vitest";
import { serverKey } from "../servers/entity.ts";
import { type TestClient, testClient } from "../testing/http.ts";

/**
 * Malformed input is a 4xx problem naming what is wrong, never a 500 and never
 * silently ignored: forged cursors, out-of-range numbers, ids of another kind
 * or alphabet, unknown query parameters. Through the real HTTP surface.
 */
type Json = Record<string, unknown>;
type Problem = { status: number; detail: string; errors?: { path: string; message: string }[] };
let t: TestClient;
let token: string;
let userId: string;
const get = <T = Json>(path: string) => t.json<T>("GET", path, { token });

beforeAll(async () => {
  t = await testClient({ HOIST_RATE_LIMIT_API: "0" });
  ({
    token,
    user: { id: userId },
  } = await t.register("ivy"));
  for (let i = 0; i < 3; i++) {
    const res = await t.json<Json>("POST", "/api/servers", {
      token,
      body: { name: `box-${i}`, address: `192.0.2.${i + 1}`, sshUser: "deploy", password: "not-used-123" },
    });
    expect(res.status).toBe(201);
    if (i === 0) await t.deps.store.update(serverKey(userId, res.body.id as string), { set: { status: "online" } });
  }
});

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

describe("malformed input", () => {
  it("refuses cursors Hoist did not issue, tampered or forged, and takes its own", async () => {
    const first = await get<{ items: Json[]; nextCursor: string }>("/api/servers?limit=1");
    expect(first.body.nextCursor).toEqual(expect.any(String));
    expect((await get(`/api/servers?limit=1&cursor=${first.body.nextCursor}`)).status).toBe(200);
    const [payload] = first.body.nextCursor.split(".");
    const forged = [
      b64({ gsi1pk: `OWNER#${userId}#SERVERS` }), // only the partition key: once a 500
      `${b64({ gsi1pk: `OWNER#${userId}#SERVERS` })}.AAAA`,
      `${payload}.${"A".repeat(32)}`, // its MAC replaced
      `${b64({ ...JSON.parse(Buffer.from(payload as string, "base64url").toString()), x: "1" })}.${first.body.nextCursor.split(".")[1]}`,
      "not-a-cursor",
    ];
    for (const cursor of forged) {
      const res = await get<Problem>(`/api/servers?cursor=${encodeURIComponent(cursor)}`);
      expect(res.status, cursor).toBe(400);
      expect(res.body.errors?.[0]?.path).toBe("query.cursor");
    }
  });

  it("bounds log seqs (after) instead of failing in the database", async () => {
    const res = await get<Problem>("/api/deployments/dep_abc/logs?after=99999999990");
    expect(res.status).toBe(400);
    expect(res.body.errors?.[0]?.path).toMatch(/after/);
  });

  it("validates path ids by prefix and alphabet: no `#` reaches a key, no other kind's id is read", async () => {
    const apps = await get<Problem>("/api/apps/app_x%23ENV");
    expect(apps.status).toBe(400);
    expect(apps.body.errors?.[0]).toMatchObject({ path: "param.id" });
    expect((await get("/api/apps/srv_abcdef")).status).toBe(400);
    expect((await get("/api/servers/srv_doesnotexist")).status).toBe(404);
  });

  it("answers an unknown query parameter 400 naming it, and makes every listed filter work", async () => {
    const logs = await get<Problem>("/api/deployments/dep_abc/logs?cursor=abc");
    expect(logs.status).toBe(400);
    expect(logs.body.errors?.map((e) => e.path)).toEqual(["query.cursor"]);
    const typo = await get<Problem>("/api/apps?stauts=running&format=array");
    expect(typo.status).toBe(400);
    expect(typo.body.detail).toMatch(/stauts/);
    expect((await get<Problem>("/api/auth/verify?x=1")).status).toBe(400);

    const online = await get<{ items: { status: string }[] }>("/api/servers?status=online");
    expect(online.status).toBe(200);
    expect(online.body.items.map((s) => s.status)).toEqual(["online"]);
    const unknown = await get<{ items: { status: string }[] }>("/api/servers?status=unknown");
    expect(unknown.body.items).toHaveLength(2);
    expect((await get<Problem>("/api/servers?status=sideways")).status).toBe(400);
  });
});
