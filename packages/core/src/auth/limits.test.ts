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
      last = await t.call("POST", "/api/auth/refresh", { body: { refreshToken: "x".repeat(40) } });
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
