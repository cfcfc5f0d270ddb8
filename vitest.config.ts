import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["packages/*/src/**/*.test.ts", "infra/**/*.test.ts", "stacks/**/*.test.ts"],
    // One DynamoDB Local for the whole run; each test file makes its own table.
    globalSetup: ["./vitest.global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Two files at a time even on 2 cores (vitest's default there is one): most of a file's time is waiting on
    // DynamoDB Local, SSH and sleeps, so the suite takes about 330 s instead of 440 s.
    maxWorkers: 2,
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true", SST_TELEMETRY_DISABLED: "1" },
  },
});
