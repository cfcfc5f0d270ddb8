import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { dotenv } from "./remote.ts";

describe(".env", () => {
  it("reads back every value literally in sh", () => {
    const env = { A: "plain value", B: 'it\'s "q" $HOME `id` \\ back', C: "multi\nline", D: "", E: "$(touch pwned)" };
    const dir = mkdtempSync(join(tmpdir(), "hoist-env-"));
    writeFileSync(join(dir, ".env"), dotenv(env));
    const out = execFileSync("sh", ["-c", 'set -a; . ./.env; set +a; printf "%s\\0" "$A" "$B" "$C" "$D" "$E"'], {
      cwd: dir,
    });
    expect(out.toString().split("\0").slice(0, -1)).toEqual(Object.values(env));
    expect(execFileSync("ls", [dir]).toString()).not.toContain("pwned");
  });
});
