import type { Executor } from "@hoist/core/servers/ssh";

/**
 * The ssh2 executor of ports/executor.ts, loaded on its first command: the
 * http function's SSH is the server status and metrics checks and template
 * files (SFTP), and the workers'
 * cold start need not parse ssh2 before a job connects. The dynamic import is
 * a chunk of its own (`splitting`, infra/esbuild.ts); ssh2 stays in it, out
 * of the cold start, while nothing a function imports statically reaches
 * servers/ssh.ts (take `SshError` from servers/ssh-error.ts).
 */
export const lazySsh2Executor = (): Executor => {
  let loaded: Promise<Executor> | undefined;
  const executor = () => {
    loaded ??= import("./executor.ts").then(
      ({ ssh2Executor }) => ssh2Executor(),
      (err: unknown) => {
        loaded = undefined; // the next command tries again
        throw err;
      },
    );
    return loaded;
  };
  return {
    exec: async (target, script, opts) => (await executor()).exec(target, script, opts),
    writeFiles: async (target, dir, files, opts) => {
      const loadedExecutor = await executor();
      if (!loadedExecutor.writeFiles) throw new Error("The ssh2 executor cannot write files");
      return loadedExecutor.writeFiles(target, dir, files, opts);
    },
    close: async () => {
      if (loaded) await (await loaded).close?.();
    },
  };
};
