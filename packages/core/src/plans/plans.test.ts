import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../config.ts";
import { loadPlans, parsePlans } from "./plans.ts";

const file = (json: unknown) => {
  const path = join(mkdtempSync(join(tmpdir(), "hoist-plans-")), "plans.json");
  writeFileSync(path, typeof json === "string" ? json : JSON.stringify(json));
  return path;
};

describe("plans", () => {
  it("has free, pro and team by default, free for new users; a missing limit is unlimited", () => {
    const plans = loadConfig({}).plans;
    expect(Object.keys(plans.byName)).toEqual(["free", "pro", "team"]);
    expect(plans.default).toBe("free");
    expect(plans.get(undefined).limits).toMatchObject({ servers: 1, apps: 3, runningApps: 1, requestsPerMinute: 60 });
    expect(plans.get("team").limits.appMinutes).toBeUndefined();
    expect(plans.get("gone").name).toBe("free"); // a plan no longer configured: the default
    expect(plans.get("free").prices).toEqual({
      requests: 0.01,
      deployments: 1,
      deploySeconds: 0.05,
      appRunningMinutes: 0.5,
    });
  });

  it("reads HOIST_PLANS_FILE", () => {
    const path = file({ default: "solo", plans: { solo: { limits: { apps: 2 }, prices: { deployments: 2.5 } } } });
    const plans = loadConfig({ HOIST_PLANS_FILE: path }).plans;
    expect(plans.get(null)).toEqual({ name: "solo", limits: { apps: 2 }, prices: { deployments: 2.5 } });
  });

  it("stops the start on a bad file, naming each bad field", () => {
    const bad = (plan: unknown) => () =>
      loadConfig({ HOIST_PLANS_FILE: file({ default: "free", plans: { free: plan } }) });
    expect(bad({ limits: { apps: -1, servers: 1.5 }, prices: { requests: "a cent" } })).toThrow(
      /invalid plans\n {2}plans\.free\.limits\.servers: .*int.*\n {2}plans\.free\.limits\.apps: .*>=0\n {2}plans\.free\.prices\.requests: .*number/,
    );
    expect(bad({ limits: { bananas: 3 } })).toThrow(/plans\.free\.limits: .*"bananas"/);
    expect(() => parsePlans(JSON.stringify({ default: "x", plans: { free: {} } }), "test")).toThrow(
      "default: must name one of the plans",
    );
    expect(() => loadPlans(file("{not json"))).toThrow(/not JSON/);
    expect(() => loadPlans("/nonexistent/plans.json")).toThrow(/cannot read \/nonexistent\/plans.json \(ENOENT\)/);
  });
});
