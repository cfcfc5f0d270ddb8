import { CidrSet } from "../cidr.ts";
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

/** Checks IP addresses against a {@link NetworkPolicy}; built once, then cheap to ask. */
export class AddressGuard {
  private readonly deny: CidrSet;
  private readonly allow: CidrSet;

  constructor(policy: NetworkPolicy = DEFAULT_NETWORK_POLICY) {
    this.deny = new CidrSet(policy.denyNetworks);
    this.allow = new CidrSet(policy.allowNetworks);
  }

  /**
   * The deny entry that refuses this address, or null when Hoist may connect
   * to it (not denied, or allowed by an override). Not an IP address: null.
   */
  deniedBy(address: string): string | null {
    const denied = this.deny.match(address);
    return denied && !this.allow.match(address) ? denied : null;
  }
}
