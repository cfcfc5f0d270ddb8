import { describe, expect, it } from "vitest";
import { awsResource, loadConfig } from "./config.ts";
import { ConfigError } from "./errors.ts";

describe("loadConfig", () => {
  it("has a default for everything", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 3000,
      dataDir: ".hoist",
      rateLimit: { auth: 5, api: 100 },
      github: { url: "https://github.com", apiUrl: "https://api.github.com" },
      corsOrigins: [],
    });
  });

  it("reads the documented variables, treating empty ones as unset", () => {
    const config = loadConfig({
      PORT: "8080",
      HOIST_DATA_DIR: "/var/lib/hoist",
      HOIST_CORS_ORIGINS: "https://a.example, https://b.example",
      HOIST_RATE_LIMIT_API: "0",
      HOIST_GITHUB_API_URL: "",
    });
    expect(config.port).toBe(8080);
    expect(config.dataDir).toBe("/var/lib/hoist");
    expect(config.corsOrigins).toEqual(["https://a.example", "https://b.example"]);
    expect(config.rateLimit.api).toBe(0);
    expect(config.github.apiUrl).toBe("https://api.github.com");
  });

  it.each([
    ["PORT", "eighty"],
    ["PORT", "70000"],
    ["HOIST_RATE_LIMIT_AUTH", "-1"],
    ["HOIST_GITHUB_URL", "ftp://github.com"],
    ["HOIST_CORS_ORIGINS", "not a url"],
    ["HOIST_LOG_LEVEL", "loud"],
  ])("fails naming %s when it is %j", (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(name);
  });

  it("names a missing or malformed AWS resource variable", () => {
    expect(awsResource("HOIST_QUEUE_URL", { HOIST_QUEUE_URL: "https://sqs.example/q" })).toBe("https://sqs.example/q");
    expect(() => awsResource("HOIST_QUEUE_URL", {})).toThrow(ConfigError);
    expect(() => awsResource("HOIST_QUEUE_URL", {})).toThrow("HOIST_QUEUE_URL");
    expect(() => awsResource("HOIST_SCHEDULER_ROLE_ARN", { HOIST_SCHEDULER_ROLE_ARN: "role" })).toThrow(
      "HOIST_SCHEDULER_ROLE_ARN",
    );
  });
});
