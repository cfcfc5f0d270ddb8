import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build, type Metafile } from "esbuild";
import { describe, expect, it } from "vitest";
import { lambdaNodejs } from "../../../infra/esbuild.ts";

/**
 * What each Lambda loads at cold start (its entry and the chunks it imports
 * statically) stays free of what only some requests need: ssh2 (SSH and SFTP,
 * behind ports/lazy-executor.ts), the SSM client and the per-port AWS SDK
 * clients. One stray static import (say `SshError` from servers/ssh.ts rather
 * than servers/ssh-error.ts) pulls ssh2 into every function; `npm run bench --
 * lambda` measures the cost, this keeps it from coming back unnoticed.
 */
const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const LAZY_ONLY = [
  "node_modules/ssh2/",
  "node_modules/@aws-sdk/client-ssm/",
  "node_modules/@aws-sdk/client-sqs/",
  "node_modules/@aws-sdk/client-kms/",
  "node_modules/@aws-sdk/client-scheduler/",
  "node_modules/@aws-sdk/client-apigatewaymanagementapi/",
];

async function loadedAtImport(fn: string): Promise<string[]> {
  const { esbuild: options, ...nodejs } = lambdaNodejs;
  const entry = `packages/functions/src/${fn}.ts`;
  const result = await build({
    absWorkingDir: root,
    entryPoints: [entry],
    platform: "node",
    bundle: true,
    format: nodejs.format,
    splitting: nodejs.splitting,
    outdir: join(root, ".cold-start-test"),
    write: false,
    metafile: true,
    logLevel: "silent",
    mainFields: ["module", "main"],
    ...options,
  });
  const outputs = (result.metafile as Metafile).outputs;
  const start = Object.keys(outputs).find((o) => outputs[o]?.entryPoint === entry);
  if (!start) throw new Error(`no output for ${entry}`);
  const seen = new Set<string>();
  const visit = (o: string) => {
    if (seen.has(o)) return;
    seen.add(o);
    for (const i of outputs[o]?.imports ?? []) if (i.kind === "import-statement" && outputs[i.path]) visit(i.path);
  };
  visit(start);
  return [...seen].flatMap((o) => Object.keys(outputs[o]?.inputs ?? {}));
}

describe("Lambda cold starts", () => {
  it.each(["http", "ws", "deploy-worker", "auto-stop"])(
    "%s loads no SSH or per-port SDK client at import",
    async (fn) => {
      const inputs = await loadedAtImport(fn);
      expect(inputs.length).toBeGreaterThan(50); // the walk saw the function's code
      expect(inputs.filter((path) => LAZY_ONLY.some((lazy) => path.includes(lazy)))).toEqual([]);
    },
  );
});
