import { SshError } from "@hoist/core/servers/ssh-error";
import { describe, expect, it } from "vitest";
import { lazySsh2Executor } from "./lazy-executor.ts";

const target = { host: "192.0.2.1", port: 0, username: "root", password: "x", hostKeyFingerprint: null };
const opts = { timeoutMs: 1000, connectTimeoutMs: 1000 };

describe("lazySsh2Executor", () => {
  it("closes without loading ssh2 when nothing ran", async () => {
    await expect(lazySsh2Executor().close?.()).resolves.toBeUndefined();
  });

  it("hands each command to the ssh2 executor, loaded on first use", async () => {
    const executor = lazySsh2Executor();
    // An invalid port is refused by the ssh2 executor before any connection.
    for (let i = 0; i < 2; i++) {
      const err = await executor.exec(target, "true", opts).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SshError);
      expect(err).toMatchObject({ kind: "protocol", message: "Invalid SSH port 0 for 192.0.2.1" });
    }
    await executor.close?.();
  });
});
