/** The part of esbuild's plugin API used here, so one plugin fits SST's esbuild (0.18) and the repository's. */
interface PluginBuild {
  onResolve(
    options: { filter: RegExp },
    callback: (args: { importer: string }) => { path: string; namespace: string } | undefined,
  ): void;
  onLoad(options: { filter: RegExp; namespace: string }, callback: () => { contents: string; loader: "js" }): void;
}

/**
 * zod bundles the error messages of every language (~270 KB of a Lambda);
 * Hoist answers in English, which zod imports separately as its default.
 */
export const zodEnglishOnly = {
  name: "zod-english-only",
  setup(build: PluginBuild) {
    build.onResolve({ filter: /\/locales\/index\.js$/ }, (args) =>
      /[\\/]zod[\\/]/.test(args.importer) ? { path: "zod-locales", namespace: "hoist-stub" } : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: "hoist-stub" }, () => ({ contents: "export {};", loader: "js" }));
  },
};

/**
 * The esbuild options every Lambda is bundled with, on top of SST's own
 * (sst.config.ts through `lambdaNodejs`, and the bench that measures the
 * bundles). ssh2's optional native speed-ups (`sshcrypto.node`,
 * `cpu-features`) are loaded in try/catch and are not built here (install
 * scripts off), so they stay out and ssh2 uses its pure-JS crypto. The target
 * is the runtime the stacks deploy (SST's default is esnext).
 */
export const lambdaEsbuild = {
  plugins: [zodEnglishOnly],
  external: ["cpu-features", "*.node"],
  target: "node22",
};

/**
 * SST v2 `nodejs` props of every function: ESM, minified (SST's default is
 * unminified) and split: what a function reaches only through `import()` is a
 * chunk loaded on first use (the AWS SDK's credential providers other than
 * the environment's, the SSM client and the JWT key set's parser, each
 * port's adapter and SDK client, the ssh2 executor: functions/src/ports/lazy.ts
 * and lazy-executor.ts). A chunk that the entry also reaches through
 * static imports is loaded with it: esbuild follows files, not used exports.
 * SST then emits a source map per chunk and moves only one out of the code.
 */
export const lambdaNodejs = {
  format: "esm",
  minify: true,
  splitting: true,
  esbuild: lambdaEsbuild,
} as const;
