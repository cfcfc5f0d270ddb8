import type { SSMClient } from "@aws-sdk/client-ssm";

const FETCH = "__FETCH_FROM_SSM__";

/**
 * SST v2 secrets bound to this function. SST sets `SST_Secret_value_<NAME>`
 * to the value (prefetched: `prefetchSecrets` in stacks/) or to a marker
 * meaning "read it from SSM" (readSecrets): what `sst/node/config` does,
 * without bundling its older AWS SDK copy. A prefetched function still sees
 * markers in the moments between a deploy updating it and SST's prefetcher
 * writing the values. Unbound names are simply absent.
 */
export async function loadSecrets(
  names: string[],
  env: Record<string, string | undefined> = process.env,
  client?: Pick<SSMClient, "send">,
): Promise<Record<string, string | undefined>> {
  const values: Record<string, string | undefined> = {};
  const fetch: string[] = [];
  for (const name of names) {
    const value = env[`SST_Secret_value_${name}`];
    if (value === FETCH) fetch.push(name);
    else values[name] = value;
  }
  if (fetch.length === 0) return values;
  return { ...values, ...(await readSecrets(fetch, env, client)) };
}

/**
 * SST v2 secrets read from SSM: `<SST_SSM_PREFIX>Secret/<NAME>/value`, else
 * the app-wide fallback. One not set anywhere throws, unless `optional`
 * (then undefined). The SSM client is loaded only here (its own chunk).
 */
export async function readSecrets(
  names: string[],
  env: Record<string, string | undefined> = process.env,
  client?: Pick<SSMClient, "send">,
  opts: { optional?: string[] } = {},
): Promise<Record<string, string | undefined>> {
  const values: Record<string, string | undefined> = {};
  const { GetParametersCommand, SSMClient } = await import("./ssm.ts");
  const ssm = client ?? new SSMClient({});

  const paths = {
    stage: (n: string) => `${env.SST_SSM_PREFIX ?? ""}Secret/${n}/value`,
    fallback: (n: string) => `/sst/${env.SST_APP}/.fallback/Secret/${n}/value`,
  };
  for (const path of [paths.stage, paths.fallback]) {
    const wanted = names.filter((n) => values[n] === undefined);
    if (wanted.length === 0) break;
    const out = await ssm.send(new GetParametersCommand({ Names: wanted.map(path), WithDecryption: true }));
    for (const p of out.Parameters ?? []) {
      const name = wanted.find((n) => path(n) === p.Name);
      if (name) values[name] = p.Value;
    }
  }
  const missing = names.filter((n) => values[n] === undefined && !opts.optional?.includes(n));
  if (missing.length > 0) {
    throw new Error(
      `Secrets not set for stage ${env.SST_STAGE}: ${missing.join(", ")} (npx sst secrets set <NAME> <value>)`,
    );
  }
  return Object.fromEntries(names.map((n) => [n, values[n]]));
}
