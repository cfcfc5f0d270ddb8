import { isIP } from "node:net";
import type { Context } from "hono";
import { CidrSet } from "../../cidr.ts";

/**
 * The caller's address. The platform's view first: API Gateway's sourceIp on
 * Lambda, the socket's peer on Node. When that peer is one of
 * `HOIST_TRUSTED_PROXIES`, `X-Forwarded-For` is read from the right, skipping
 * trusted proxies: the first address that is not one is the client. Anything
 * left of it could have been written by the client itself, so it is never
 * believed — and without trusted proxies the header is ignored entirely.
 */
export function clientIp(c: Context): string {
  const env = c.env as
    | {
        event?: { requestContext?: { http?: { sourceIp?: string } } };
        incoming?: { socket?: { remoteAddress?: string } };
      }
    | undefined;
  const peer = env?.event?.requestContext?.http?.sourceIp ?? env?.incoming?.socket?.remoteAddress ?? "unknown";
  const proxies = (c.var as { deps?: { config?: { trustedProxies?: string[] } } } | undefined)?.deps?.config
    ?.trustedProxies;
  if (!proxies || proxies.length === 0) return peer;
  const trusted = trustList(proxies);
  if (!isTrusted(trusted, peer)) return peer;
  const hops = (c.req.header("x-forwarded-for") ?? "")
    .split(",")
    .map((h) => h.trim())
    .filter(Boolean);
  let client = peer;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i] as string;
    if (isIP(hop) === 0) break; // garbage: stop at the last address we could trust
    client = hop;
    if (!isTrusted(trusted, hop)) break;
  }
  return client;
}

const sets = new WeakMap<string[], CidrSet>();

/** The trusted proxies as a set, built once per configuration. */
function trustList(cidrs: string[]): CidrSet {
  let set = sets.get(cidrs);
  if (!set) {
    set = new CidrSet(cidrs);
    sets.set(cidrs, set);
  }
  return set;
}

const isTrusted = (set: CidrSet, address: string) => set.match(address) !== null;
