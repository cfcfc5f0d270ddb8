import { randomBytes } from "node:crypto";
import { generateKeyPair, SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { STRONG_PASSWORD, type TestClient, testClient } from "../testing/http.ts";
import { signAccessToken } from "./tokens.ts";

type Session = {
  user: Record<string, unknown> & { id: string; role: string };
  token: string;
  refreshToken: string;
  expiresIn: number;
};

let t: TestClient;
let admin: Session;
let member: Session;

beforeAll(async () => {
  // No grace window here: a spent token presented again is a reuse at once (the grace window has its own test).
  t = await testClient({ HOIST_REFRESH_GRACE_SECONDS: "0" });
  admin = await t.register("ada");
  member = await t.register("grace");
});

describe("register", () => {
  it("answers the API.md shape; the first user is admin, later ones members", async () => {
    expect(admin.user).toEqual({
      id: expect.stringMatching(/^usr_[A-Za-z0-9_-]{22}$/),
      username: "ada",
      email: "ada@example.com",
      role: "admin",
      disabled: false,
      githubConnected: false,
      oidcConnected: false,
      authType: "password",
      plan: "free", // the default plan
      createdAt: expect.any(Number),
    });
    expect(admin.expiresIn).toBe(900);
    expect(member.user.role).toBe("member");
    expect(JSON.stringify(admin)).not.toContain("passwordHash");
  });

  it("refuses a taken email or username (case-insensitive) with 409", async () => {
    const dupEmail = await t.json("POST", "/api/auth/register", {
      body: { username: "other", email: "ADA@example.com", password: STRONG_PASSWORD },
    });
    expect(dupEmail.status).toBe(409);
    expect(dupEmail.body.detail).toMatch(/email/);
    const dupName = await t.json("POST", "/api/auth/register", {
      body: { username: "Ada", email: "new@example.com", password: STRONG_PASSWORD },
    });
    expect(dupName.status).toBe(409);
    expect(dupName.body.detail).toMatch(/username/);
  });

  it("lets exactly one of racing registrations of one email win", async () => {
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        t.call("POST", "/api/auth/register", {
          body: { username: `racer${i}`, email: "race@example.com", password: STRONG_PASSWORD },
        }),
      ),
    );
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409]);
  });

  it("refuses weak passwords with a 400 naming the problem", async () => {
    for (const password of ["short", "password123", "aaaaaaaaaaaa", "hopper-hopper-1"]) {
      const { status, body } = await t.json<{ errors: { path: string; message: string }[] }>(
        "POST",
        "/api/auth/register",
        {
          body: { username: "hopper", email: "hopper@example.com", password },
        },
      );
      expect(status).toBe(400);
      expect(body.errors[0]?.path).toBe("body.password");
    }
  });
});

describe("refresh grace window", () => {
  it("gives two tabs refreshing one token at once the same new pair, and still catches a replay after the window", async () => {
    const g = await testClient({ HOIST_REFRESH_GRACE_SECONDS: "1" });
    const { refreshToken } = await g.register("tabs");
    const [a, b] = await Promise.all(
      [1, 2].map(() => g.json<Session>("POST", "/api/auth/refresh", { body: { refreshToken } })),
    );
    expect([a?.status, b?.status]).toEqual([200, 200]);
    expect(a?.body.refreshToken).toBe(b?.body.refreshToken);
    // The family lives on: the shared successor works.
    const next = await g.json<Session>("POST", "/api/auth/refresh", { body: { refreshToken: a?.body.refreshToken } });
    expect(next.status).toBe(200);
    await new Promise((r) => setTimeout(r, 1100));
    const replay = await g.json("POST", "/api/auth/refresh", { body: { refreshToken } });
    expect(replay.status).toBe(401);
    expect((await g.json("POST", "/api/auth/refresh", { body: { refreshToken: next.body.refreshToken } })).status).toBe(
      401,
    );
  });
});

describe("login, refresh, reuse detection, logout", () => {
  it("tells the whole story", async () => {
    const byName = await t.json<Session>("POST", "/api/auth/login", {
      body: { username: "grace", password: STRONG_PASSWORD },
    });
    expect(byName.status).toBe(200);
    const byEmail = await t.json<Session>("POST", "/api/auth/login", {
      body: { email: "Grace@Example.com", password: STRONG_PASSWORD },
    });
    expect(byEmail.status).toBe(200);
    expect(byEmail.body.user.id).toBe(member.user.id);

    const verify = await t.json("GET", "/api/auth/verify", { token: byName.body.token });
    expect(verify.status).toBe(200);
    expect(verify.body).toEqual({ user: member.user });

    // Rotate: the old refresh token is spent.
    const first = byName.body.refreshToken;
    const rotated = await t.json<Session>("POST", "/api/auth/refresh", { body: { refreshToken: first } });
    expect(rotated.status).toBe(200);
    expect(rotated.body.refreshToken).not.toBe(first);

    // Presenting the spent one again revokes the whole family, including the fresh token.
    const reuse = await t.json("POST", "/api/auth/refresh", { body: { refreshToken: first } });
    expect(reuse.status).toBe(401);
    expect(reuse.body.detail).toMatch(/reused/);
    const afterReuse = await t.json("POST", "/api/auth/refresh", { body: { refreshToken: rotated.body.refreshToken } });
    expect(afterReuse.status).toBe(401);
    // Another sign-in's family is untouched.
    const other = await t.json("POST", "/api/auth/refresh", { body: { refreshToken: byEmail.body.refreshToken } });
    expect(other.status).toBe(200);

    // Logout blocks the access token at once and revokes its refresh family.
    const session = other.body as unknown as Session;
    const out = await t.json("POST", "/api/auth/logout", {
      token: session.token,
      body: { refreshToken: session.refreshToken },
    });
    expect(out).toMatchObject({ status: 200, body: { success: true } });
    expect((await t.call("GET", "/api/auth/me", { token: session.token })).status).toBe(401);
    expect((await t.call("POST", "/api/auth/refresh", { body: { refreshToken: session.refreshToken } })).status).toBe(
      401,
    );

    const audit = await t.json<{ items: { action: string }[] }>("GET", "/api/audit-logs?limit=100", {
      token: admin.token,
    });
    const actions = audit.body.items.map((i) => i.action);
    expect(actions).toEqual(
      expect.arrayContaining(["auth.register", "auth.login", "auth.token_reuse_detected", "auth.logout"]),
    );
  });

  it("logs out without a body too", async () => {
    const s = await t.json<Session>("POST", "/api/auth/login", {
      body: { username: "ada", password: STRONG_PASSWORD },
    });
    expect((await t.call("POST", "/api/auth/logout", { token: s.body.token })).status).toBe(200);
    expect((await t.call("GET", "/api/auth/verify", { token: s.body.token })).status).toBe(401);
    admin = (await t.json<Session>("POST", "/api/auth/login", { body: { username: "ada", password: STRONG_PASSWORD } }))
      .body;
  });

  it("answers a wrong password and an unknown account the same way", async () => {
    const wrong = await t.json("POST", "/api/auth/login", {
      body: { username: "grace", password: "not the password" },
    });
    const unknown = await t.json("POST", "/api/auth/login", {
      body: { username: "nobody", password: "not the password" },
    });
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(unknown.body.detail).toBe(wrong.body.detail);
  });
});

describe("access tokens", () => {
  const expectRejected = async (token: string) => {
    const res = await t.json("GET", "/api/auth/me", { token });
    expect(res.status).toBe(401);
    expect(res.res.headers.get("content-type")).toBe("application/problem+json");
  };

  it("refuses expired, forged, alg-none, wrong-issuer, wrong-audience and garbage tokens", async () => {
    const deps = t.deps;
    await expectRejected(await signAccessToken(deps, member.user.id, Date.now() - 2 * 3600_000));

    const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
    const claims = { sub: member.user.id, jti: randomBytes(8).toString("hex") };
    const base = (key = deps.jwtKeys.signing.key, kid = deps.jwtKeys.signing.kid) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: "EdDSA", kid, typ: "at+jwt" })
        .setIssuedAt()
        .setExpirationTime("10m")
        .sign(key);
    const forged = await new SignJWT(claims)
      .setProtectedHeader({ alg: "EdDSA", kid: deps.jwtKeys.signing.kid, typ: "at+jwt" })
      .setIssuer("hoist")
      .setAudience("hoist-api")
      .setExpirationTime("10m")
      .sign(privateKey);
    await expectRejected(forged);

    const header = Buffer.from(JSON.stringify({ alg: "none", typ: "at+jwt", kid: deps.jwtKeys.signing.kid })).toString(
      "base64url",
    );
    const payload = Buffer.from(
      JSON.stringify({ ...claims, iss: "hoist", aud: "hoist-api", exp: Math.floor(Date.now() / 1000) + 600 }),
    ).toString("base64url");
    await expectRejected(`${header}.${payload}.`);

    await expectRejected(
      await new SignJWT(claims)
        .setProtectedHeader({ alg: "EdDSA", kid: deps.jwtKeys.signing.kid, typ: "at+jwt" })
        .setIssuer("evil")
        .setAudience("hoist-api")
        .setExpirationTime("10m")
        .sign(deps.jwtKeys.signing.key),
    );
    await expectRejected(
      await new SignJWT(claims)
        .setProtectedHeader({ alg: "EdDSA", kid: deps.jwtKeys.signing.kid, typ: "at+jwt" })
        .setIssuer("hoist")
        .setAudience("someone-else")
        .setExpirationTime("10m")
        .sign(deps.jwtKeys.signing.key),
    );
    await expectRejected(await base());
    await expectRejected("not.a.token");
    expect((await t.call("GET", "/api/auth/me", { headers: { authorization: "Basic abc" } })).status).toBe(401);
    expect((await t.call("GET", "/api/auth/me")).status).toBe(401);
  });

  it("accepts a token within the clock-skew tolerance", async () => {
    const token = await signAccessToken(t.deps, member.user.id, Date.now() - 900_000 - 10_000);
    expect((await t.call("GET", "/api/auth/me", { token })).status).toBe(200);
  });
});

describe("roles and users", () => {
  it("keeps member out of admin routes with 403 and lets admins manage users", async () => {
    expect((await t.call("GET", "/api/users", { token: member.token })).status).toBe(403);
    const list = await t.json<{ items: { username: string }[]; nextCursor: string | null }>(
      "GET",
      "/api/users?limit=100",
      {
        token: admin.token,
      },
    );
    expect(list.status).toBe(200);
    expect(list.body.items.map((u) => u.username)).toEqual(expect.arrayContaining(["ada", "grace"]));

    expect((await t.call("GET", "/api/users/usr_doesnotexist", { token: admin.token })).status).toBe(404);
    const promoted = await t.json("PATCH", `/api/users/${member.user.id}`, {
      token: admin.token,
      body: { role: "admin" },
    });
    expect(promoted).toMatchObject({ status: 200, body: { role: "admin" } });
    expect((await t.call("GET", "/api/users", { token: member.token })).status).toBe(200);
    await t.json("PATCH", `/api/users/${member.user.id}`, { token: admin.token, body: { role: "member" } });
    expect((await t.call("GET", "/api/users", { token: member.token })).status).toBe(403);

    const self = await t.json("PATCH", `/api/users/${admin.user.id}`, { token: admin.token, body: { disabled: true } });
    expect(self.status).toBe(409);
  });

  it("stops a disabled user's tokens at once", async () => {
    const victim = await t.register("disabled-dan");
    expect((await t.call("GET", "/api/auth/me", { token: victim.token })).status).toBe(200);
    await t.json("PATCH", `/api/users/${victim.user.id}`, { token: admin.token, body: { disabled: true } });
    expect((await t.call("GET", "/api/auth/me", { token: victim.token })).status).toBe(401);
    expect((await t.call("POST", "/api/auth/refresh", { body: { refreshToken: victim.refreshToken } })).status).toBe(
      401,
    );
    expect(
      (await t.call("POST", "/api/auth/login", { body: { username: "disabled-dan", password: STRONG_PASSWORD } }))
        .status,
    ).toBe(403);
  });
});

describe("audit log", () => {
  it("shows members their own entries and admins everyone's", async () => {
    const mine = await t.json<{ items: { userId: string }[] }>("GET", "/api/audit-logs?limit=100", {
      token: member.token,
    });
    expect(mine.status).toBe(200);
    expect(mine.body.items.length).toBeGreaterThan(0);
    expect(new Set(mine.body.items.map((i) => i.userId))).toEqual(new Set([member.user.id]));

    const roleChanges = await t.json<{
      items: { action: string; details: Record<string, unknown>; ipAddress: string }[];
    }>("GET", `/api/audit-logs?resourceType=user&resourceId=${member.user.id}&action=user.role_changed`, {
      token: admin.token,
    });
    expect(roleChanges.status, JSON.stringify(roleChanges.body)).toBe(200);
    expect(roleChanges.body.items.map((i) => i.details)).toEqual([
      { from: "admin", to: "member" },
      { from: "member", to: "admin" },
    ]);

    // Paging through everything with small pages sees each entry once.
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { body: { items: { id: string }[]; nextCursor: string | null } } = await t.json(
        "GET",
        `/api/audit-logs?limit=3${cursor ? `&cursor=${cursor}` : ""}`,
        { token: admin.token },
      );
      seen.push(...page.body.items.map((i) => i.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.length).toBeGreaterThan(10);
  });
});

describe("bad input is a 400 problem, never a 500", () => {
  const cases: [string, string, unknown][] = [
    ["register missing fields", "/api/auth/register", { username: "x" }],
    ["register wrong types", "/api/auth/register", { username: 1, email: true, password: [] }],
    [
      "register huge strings",
      "/api/auth/register",
      { username: "u".repeat(5000), email: "e@x.io", password: STRONG_PASSWORD },
    ],
    [
      "register bad email",
      "/api/auth/register",
      { username: "valid", email: "not-an-email", password: STRONG_PASSWORD },
    ],
    ["login both identifiers", "/api/auth/login", { username: "a", email: "a@b.co", password: "x" }],
    ["login no identifier", "/api/auth/login", { password: "x" }],
    ["refresh missing", "/api/auth/refresh", {}],
    ["refresh wrong type", "/api/auth/refresh", { refreshToken: 42 }],
    ["malformed JSON", "/api/auth/login", '{"username": "ada", '],
    ["JSON that is not an object", "/api/auth/login", "[1,2,3]"],
  ];
  it.each(cases)("%s", async (_name, path, body) => {
    const res = await t.json<{ status: number; detail: string }>("POST", path, { body });
    expect(res.status).toBe(400);
    expect(res.res.headers.get("content-type")).toBe("application/problem+json");
    expect(res.body.detail).toEqual(expect.any(String));
  });

  it("rejects a forged cursor and bad paging", async () => {
    expect((await t.call("GET", "/api/audit-logs?cursor=garbage", { token: member.token })).status).toBe(400);
    expect((await t.call("GET", "/api/users?limit=0", { token: admin.token })).status).toBe(400);
    expect((await t.call("GET", "/api/users?limit=abc", { token: admin.token })).status).toBe(400);
    expect(
      (await t.call("PATCH", `/api/users/${member.user.id}`, { token: admin.token, body: { role: "root" } })).status,
    ).toBe(400);
  });
});
