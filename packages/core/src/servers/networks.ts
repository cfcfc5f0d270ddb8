import { BlockList, isIP } from "node:net";
import { ALWAYS_DENIED_NETWORKS } from "../config.ts";

/**
 * Which addresses Hoist opens SSH connections to (SSRF guard). A user's server
 * address could otherwise point Hoist at the cloud metadata service, at itself
 * or, on AWS, at the VPC around it, and the status check would port-scan it.
 * The same shape as `config.ssh`, so the config can be passed as it is.
 */
export interface NetworkPolicy {
  /** CIDRs (or bare addresses) Hoist refuses to connect to. */
  denyNetworks: readonly string[];
  /** CIDRs allowed even when a deny entry covers them (an override). */
  allowNetworks: readonly string[];
}

/** Without configuration: metadata and link-local only, as `loadConfig` does off AWS. */
export const DEFAULT_NETWORK_POLICY: NetworkPolicy = { denyNetworks: ALWAYS_DENIED_NETWORKS, allowNetworks: [] };

type Family = "ipv4" | "ipv6";

interface Rule {
  cidr: string;
  list: BlockList;
}

function toRule(cidr: string): Rule {
  const [address = "", bits] = cidr.split("/");
  const family: Family = isIP(address) === 6 ? "ipv6" : "ipv4";
  const list = new BlockList();
  // config.ts has validated the CIDR; a bare address is one host (/32 or /128).
  list.addSubnet(address, bits === undefined ? (family === "ipv4" ? 32 : 128) : Number(bits), family);
  return { cidr, list };
}

/** An IPv4-mapped address as the URL parser spells it (`::ffff:a9fe:a9fe`). */
const MAPPED = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/;

/**
 * The forms an address takes on the wire: itself and, for an IPv4-mapped IPv6
 * address (`::ffff:169.254.169.254`, which reaches the IPv4 host), the IPv4
 * address too, so an IPv4 deny entry cannot be sidestepped by spelling it in IPv6.
 * An unspecified address (`0.0.0.0`, `::`) connects to this very host, so it
 * also counts as loopback.
 */
function forms(address: string): { address: string; family: Family }[] {
  const family = isIP(address);
  if (family === 4)
    return address === "0.0.0.0"
      ? [
          { address, family: "ipv4" },
          { address: "127.0.0.1", family: "ipv4" },
        ]
      : [{ address, family: "ipv4" }];
  if (family !== 6) return [];
  const out: { address: string; family: Family }[] = [{ address, family: "ipv6" }];
  // The URL parser gives the canonical, compressed spelling (`::ffff:a9fe:a9fe`).
  const canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  const mapped = MAPPED.exec(canonical);
  if (mapped) {
    const [high, low] = [Number.parseInt(mapped[1] ?? "0", 16), Number.parseInt(mapped[2] ?? "0", 16)];
    out.push({ address: `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`, family: "ipv4" });
  }
  if (canonical === "::") out.push({ address: "::1", family: "ipv6" }, { address: "127.0.0.1", family: "ipv4" });
  return out;
}

/** Checks IP addresses against a {@link NetworkPolicy}; built once, then cheap to ask. */
export class AddressGuard {
  private readonly deny: Rule[];
  private readonly allow: Rule[];

  constructor(policy: NetworkPolicy = DEFAULT_NETWORK_POLICY) {
    this.deny = policy.denyNetworks.map(toRule);
    this.allow = policy.allowNetworks.map(toRule);
  }

  /**
   * The deny entry that refuses this address, or null when Hoist may connect
   * to it (not denied, or allowed by an override). Not an IP address: null.
   */
  deniedBy(address: string): string | null {
    const all = forms(address);
    const match = (rules: Rule[]) => rules.find((r) => all.some((f) => r.list.check(f.address, f.family)));
    const denied = match(this.deny);
    if (!denied || match(this.allow)) return null;
    return denied.cidr;
  }
}
