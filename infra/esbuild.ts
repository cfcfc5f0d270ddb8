/** The part of esbuild's plugin API used here, so one plugin fits both SST's esbuild and the bench's. */
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
 * The esbuild options every Lambda is bundled with (sst.config.ts, and the
 * bench that measures the bundles). ssh2's optional native speed-ups
 * (`sshcrypto.node`, `cpu-features`) are loaded in try/catch and are not
 * built here (install scripts off), so they stay out and ssh2 uses its
 * pure-JS crypto.
 */
export const lambdaEsbuild = { plugins: [zodEnglishOnly], external: ["cpu-features", "*.node"] };
