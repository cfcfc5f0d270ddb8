import { describe, expect, it } from "vitest";
import { loadConfig } from "../config.ts";
import { AddressGuard } from "./networks.ts";

describe("AddressGuard", () => {
  it("by default refuses link-local and metadata addresses, and leaves loopback and private ranges alone", () => {
    const guard = new AddressGuard();
    expect(guard.deniedBy("169.254.169.254")).toBe("169.254.0.0/16");
    expect(guard.deniedBy("fe80::1")).toBe("fe80::/10");
    expect(guard.deniedBy("fd00:ec2::254")).toBe("fd00:ec2::254/128");
    expect(guard.deniedBy("100.100.100.200")).toBe("100.100.100.200/32");
    for (const ok of ["127.0.0.1", "::1", "10.0.0.5", "192.168.1.1", "203.0.113.7", "2001:db8::1"])
      expect(guard.deniedBy(ok)).toBeNull();
  });

  it("on AWS (HOIST_STAGE set) also refuses loopback and the private ranges", () => {
    const guard = new AddressGuard(loadConfig({ HOIST_STAGE: "prod" }).ssh);
    for (const denied of ["127.0.0.1", "::1", "10.1.2.3", "172.31.0.2", "192.168.0.1", "100.64.0.1", "fd12::1"])
      expect(guard.deniedBy(denied)).not.toBeNull();
    expect(guard.deniedBy("203.0.113.7")).toBeNull();
  });

  it("sees an IPv4 address through its IPv4-mapped IPv6 spellings", () => {
    const guard = new AddressGuard({ denyNetworks: ["127.0.0.0/8", "169.254.169.254"], allowNetworks: [] });
    expect(guard.deniedBy("::ffff:127.0.0.1")).toBe("127.0.0.0/8");
    expect(guard.deniedBy("::FFFF:7f00:1")).toBe("127.0.0.0/8");
    expect(guard.deniedBy("0:0:0:0:0:ffff:a9fe:a9fe")).toBe("169.254.169.254");
    expect(guard.deniedBy("169.254.169.253")).toBeNull(); // a bare address is one host
  });

  it("treats the unspecified address, which connects to this host, as loopback", () => {
    const guard = new AddressGuard({ denyNetworks: ["127.0.0.0/8", "::1/128"], allowNetworks: [] });
    expect(guard.deniedBy("0.0.0.0")).toBe("127.0.0.0/8");
    expect(guard.deniedBy("::")).not.toBeNull();
  });

  it("lets the allow list override a deny entry, and answers null for a name", () => {
    const guard = new AddressGuard({ denyNetworks: ["10.0.0.0/8"], allowNetworks: ["10.1.0.0/16"] });
    expect(guard.deniedBy("10.1.2.3")).toBeNull();
    expect(guard.deniedBy("10.2.0.1")).toBe("10.0.0.0/8");
    expect(guard.deniedBy("example.com")).toBeNull();
  });
});
