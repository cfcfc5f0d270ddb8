import { describe, expect, it } from "vitest";
import { testDeps } from "../testing/deps.ts";
import { createHttpApp } from "./app.ts";
import { ALL_MODULES, groupOf, ROUTE_GROUPS, ROUTE_MODULES } from "./route-groups.ts";

describe("route groups", () => {
  it("put every route of every module in a group that loads that module", async () => {
    let checked = 0;
    for (const name of ALL_MODULES) {
      const routes = await ROUTE_MODULES[name]();
      for (const { path } of routes.routes) {
        const group = groupOf(path);
        expect(group, `${name}: ${path}`).not.toBe("none");
        if (group === "none") continue;
        expect(ROUTE_GROUPS[group] as readonly string[], `${name}: ${path} in ${group}`).toContain(name);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(60);
  });

  it("take a path's first segment, its first two under /api/", () => {
    expect(groupOf("/")).toBe("/");
    expect(groupOf("/health")).toBe("/health");
    expect(groupOf("/health/ready")).toBe("/health");
    expect(groupOf("/api/apps")).toBe("/api/apps");
    expect(groupOf("/api/apps/a1/deployments")).toBe("/api/apps");
    expect(groupOf("/openapi.json")).toBe("/openapi.json");
    expect(groupOf("/docs/assets/x/init.js")).toBe("/docs");
    for (const path of ["/api", "/api/", "/api/nope", "/apps", "/favicon.ico", "/api/apps.json", "/constructor"])
      expect(groupOf(path), path).toBe("none");
  });

  it("answer 405 from every module of a group, and the same paths whatever group was built first", async () => {
    const app = createHttpApp(await testDeps());
    // Defined by the operate module; its group also holds the apps, deployments and webhooks modules.
    const logs = await app.request("/api/apps/a1/logs", { method: "DELETE" });
    expect(logs.status).toBe(405);
    expect(logs.headers.get("allow")).toBe("GET");
    const hook = await app.request("/api/apps/a1/webhook", { method: "PATCH" });
    expect(hook.status).toBe(405);
    const unknown = await app.request("/api/nothing-here");
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get("x-request-id")).toBeTruthy();
    expect(unknown.headers.get("content-type")).toBe("application/problem+json");
    // The document still lists every route, though only the groups above were built.
    const doc = (await (await app.request("/openapi.json")).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(["/health/ready", "/api/apps/{id}/logs", "/api/webhooks/github", "/api/usage/statement"]),
    );
  });

  it("answer twenty racing first requests to a group not built yet", async () => {
    const app = createHttpApp(await testDeps());
    const answers = await Promise.all(Array.from({ length: 20 }, () => app.request("/health")));
    expect(answers.map((r) => r.status)).toEqual(Array(20).fill(200));
  });
});
