import { describe, expect, it } from "vitest";
import { STRONG_PASSWORD, testClient } from "../testing/http.ts";

describe("account lockout", () => {
  it("locks after N failures with 423 + Retry-After, for unknown accounts alike, and unlocks after the window", async () => {
    const t = await testClient({ HOIST_LOCKOUT_ATTEMPTS: "3", HOIST_LOCKOUT_SECONDS: "2" });
    await t.register("lin");
    const attempt = (username: string, password = "wrong wrong wrong") =>
      t.call("POST", "/api/auth/login", { body: { username, password } });

    for (const username of ["lin", "ghost"]) {
      for (let i = 0; i < 3; i++) expect((await attempt(username)).status).toBe(401);
      const locked = await attempt(username, STRONG_PASSWORD);
      expect(locked.status).toBe(423);
      expect(Number(locked.headers.get("retry-after"))).toBeGreaterThan(0);
      const body = (await locked.json()) as { detail: string };
      expect(body.detail).not.toMatch(/exist/i);
    }
    await new Promise((r) => setTimeout(r, 2100));
    expect((await attempt("lin", STRONG_PASSWORD)).status).toBe(200);
  });
});

/** Rate windows are fixed minutes: start a burst well inside one, so the window cannot roll over mid-test. */
async function awayFromWindowEdge(): Promise<void> {
  const intoMinute = Date.now() % 60_000;
  if (intoMinute > 50_000) await new Promise((r) => setTimeout(r, 60_000 - intoMinute + 100));
}

describe("rate limits", () => {
  it("answers 429 with Retry-After and RateLimit headers past the per-minute limit", async () => {
    const t = await testClient({ HOIST_RATE_LIMIT_AUTH: "3", HOIST_RATE_LIMIT_API: "0" });
    await awayFromWindowEdge();
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 5; i++) {
      last = await t.call("POST", "/api/auth/login", { body: { username: "nobody", password: "wrong wrong wrong" } });
      statuses.push(last.status);
      if (i === 0) {
        expect(last.headers.get("ratelimit-limit")).toBe("3");
        expect(last.headers.get("ratelimit-remaining")).toBe("2");
      }
    }
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
    expect(Number(last?.headers.get("retry-after"))).toBeGreaterThan(0);
    // A dashboard checking its session is an ordinary API call, not a sign-in attempt.
    const { token } = await t
      .json<{ token: string }>("POST", "/api/auth/register", {
        body: { username: "vera", email: "vera@example.com", password: STRONG_PASSWORD },
        ip: "10.9.9.9",
      })
      .then((r) => r.body);
    for (let i = 0; i < 6; i++) expect((await t.call("GET", "/api/auth/verify", { token })).status).toBe(200);
    expect(last?.headers.get("ratelimit-remaining")).toBe("0");
    expect(last?.headers.get("content-type")).toBe("application/problem+json");
  });

  it("gives token refreshes a limit of their own, apart from sign-in attempts", async () => {
    const t = await testClient({
      HOIST_RATE_LIMIT_AUTH: "2",
      HOIST_RATE_LIMIT_REFRESH: "3",
      HOIST_RATE_LIMIT_API: "0",
    });
    await awayFromWindowEdge();
    const refresh = () =>
      t.call("POST", "/api/auth/refresh", { body: { refreshToken: "x".repeat(40) }, ip: "10.7.0.1" });
    const login = () =>
      t.call("POST", "/api/auth/login", {
        body: { username: "nobody", password: "wrong wrong wrong" },
        ip: "10.7.0.1",
      });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await refresh()).status);
    expect(statuses).toEqual([401, 401, 401, 429]);
    expect((await refresh()).headers.get("ratelimit-limit")).toBe("3");
    // Sign-in attempts count in their own window: the refreshes above used none of it.
    expect([(await login()).status, (await login()).status, (await login()).status]).toEqual([401, 401, 429]);
  });

  it("believes X-Forwarded-For only from HOIST_TRUSTED_PROXIES, reading it from the right", async () => {
    const t = await testClient({
      HOIST_RATE_LIMIT_AUTH: "2",
      HOIST_RATE_LIMIT_API: "0",
      HOIST_TRUSTED_PROXIES: "10.50.0.0/16",
    });
    await awayFromWindowEdge();
    const login = (ip: string, xff?: string) =>
      t.call("POST", "/api/auth/login", {
        body: { username: "nobody", password: "wrong wrong wrong" },
        ip,
        headers: xff ? { "x-forwarded-for": xff } : {},
      });
    // Two clients behind one trusted proxy each get their own window.
    expect([
      (await login("10.50.0.1", "203.0.113.5")).status,
      (await login("10.50.0.1", "203.0.113.5")).status,
    ]).toEqual([401, 401]);
    expect((await login("10.50.0.1", "203.0.113.5")).status).toBe(429);
    expect((await login("10.50.0.1", "203.0.113.6")).status).toBe(401);
    // A client cannot pick its own bucket by writing the header: the left part is never believed …
    expect((await login("10.50.0.1", "198.51.100.1, 203.0.113.5")).status).toBe(429);
    // … and an untrusted peer's header is ignored altogether (its own address counts).
    expect((await login("192.0.2.9", "203.0.113.77")).status).toBe(401);
    expect((await login("192.0.2.9", "203.0.113.78")).status).toBe(401);
    expect((await login("192.0.2.9", "203.0.113.79")).status).toBe(429);
  });

  it("limits each user across IPs on the rest of the API, and each IP across users", async () => {
    const t = await testClient({ HOIST_RATE_LIMIT_AUTH: "0", HOIST_RATE_LIMIT_API: "4" });
    const rita = await t.register("rita");
    const sam = await t.register("sam");
    await awayFromWindowEdge();
    const statuses: number[] = [];
    for (let i = 1; i <= 5; i++)
      statuses.push((await t.call("GET", "/api/audit-logs", { token: rita.token, ip: `10.0.0.${i}` })).status);
    expect(statuses).toEqual([200, 200, 200, 200, 429]);
    // Another user from a fresh address is not affected by rita's window.
    expect((await t.call("GET", "/api/audit-logs", { token: sam.token, ip: "10.0.1.1" })).status).toBe(200);
    // One address is limited whoever signs in from it.
    const fromOneIp: number[] = [];
    for (let i = 0; i < 4; i++)
      fromOneIp.push((await t.call("GET", "/api/audit-logs", { token: sam.token, ip: "10.0.2.1" })).status);
    expect(fromOneIp).toContain(429);
  });
});
