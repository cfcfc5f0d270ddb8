import { createConfig, lintFromString } from "@redocly/openapi-core";
import { describe, expect, it } from "vitest";
import { testDeps } from "../testing/deps.ts";
import { createHttpApp } from "./app.ts";

/** The published OpenAPI document passes Redocly's `recommended` ruleset with no errors. */
describe("/openapi.json", () => {
  it("is clean under Redocly's recommended rules: every operation declares its security, servers are listed", async () => {
    const app = createHttpApp(await testDeps());
    const res = await app.request("/openapi.json");
    expect(res.status).toBe(200);
    const source = await res.text();
    const problems = await lintFromString({
      source,
      absoluteRef: "openapi.json",
      config: await createConfig({ extends: ["recommended"] }),
    });
    const errors = problems
      .filter((p) => p.severity === "error")
      .map((p) => `${p.ruleId}: ${p.message} @ ${p.location[0]?.pointer}`);
    expect(errors).toEqual([]);
    const doc = JSON.parse(source) as {
      servers?: unknown[];
      paths: Record<string, Record<string, { security?: unknown }>>;
    };
    expect(doc.servers?.length).toBeGreaterThan(0);
    for (const [path, ops] of Object.entries(doc.paths))
      for (const [method, op] of Object.entries(ops)) expect(op.security, `${method} ${path}`).toBeDefined();
  });
});
