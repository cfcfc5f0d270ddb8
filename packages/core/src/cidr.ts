import { BlockList, isIP } from "node:net";

/**
 * Sets of networks (CIDRs, or bare addresses as /32 and /128) that addresses
 * are checked against: the SSH guard's deny and allow lists, the trusted
 * proxies. An address matches in every form it takes on the wire.
 */
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

/** A set of networks, built once, then cheap to ask; `match` answers the CIDR an address falls in. */
export class CidrSet {
  private readonly rules: Rule[];

  constructor(cidrs: readonly string[]) {
    this.rules = cidrs.map(toRule);
  }

  /** The first entry covering the address (in any of its forms), or null; not an IP address: null. */
  match(address: string): string | null {
    const all = forms(address);
    return this.rules.find((r) => all.some((f) => r.list.check(f.address, f.family)))?.cidr ?? null;
  }
}
