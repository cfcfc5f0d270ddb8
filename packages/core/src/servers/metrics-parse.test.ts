import { describe, expect, it } from "vitest";
import {
  bytesOf,
  containersOf,
  cpuPercent,
  disksOf,
  MAX_CONTAINERS,
  MetricsOutputError,
  memoryOf,
  parseMetrics,
  percentOf,
  UnsupportedServerError,
} from "./metrics.ts";

/** Captured output of the metrics script (an Ubuntu Docker host), trimmed. */
const STAT = [
  "cpu  4705 356 584 3699 23 23 0 0 0 0",
  "cpu  4755 356 594 3729 33 23 0 0 12 0", // +50 user, +10 system, +30 idle, +10 iowait: 60 of 100 busy
];
const MEMINFO = [
  "MemTotal:        2014856 kB",
  "MemFree:          139920 kB",
  "MemAvailable:    1123404 kB",
  "Buffers:           62824 kB",
  "Cached:           958444 kB",
];
const MOUNTS = [
  "sysfs /sys sysfs",
  "proc /proc proc",
  "udev /dev devtmpfs",
  "tmpfs /run tmpfs",
  "/dev/sda1 / ext4",
  "/dev/loop0 /snap/core20/2015 squashfs",
  "/dev/sda15 /boot/efi vfat",
  "/dev/sdb1 /mnt/my\\040data xfs",
  "overlay /var/lib/docker/overlay2/4f1c/merged overlay",
  "/dev/sda1 /var/lib/docker/containers/ab12/hostname ext4",
];
const DF = [
  "Filesystem     1024-blocks    Used Available Capacity Mounted on",
  "udev               987652       0    987652       0% /dev",
  "tmpfs              201488    1040    200448       1% /run",
  "/dev/sda1        30298176 9632748  20648812      32% /",
  "/dev/loop0          65536   65536         0     100% /snap/core20/2015",
  "/dev/sda15         106858    6186    100673       6% /boot/efi",
  "/dev/sdb1       104806400  742184 104064216       1% /mnt/my data",
  "overlay          30298176 9632748  20648812      32% /var/lib/docker/overlay2/4f1c/merged",
  "/dev/sda1        30298176 9632748  20648812      32% /var/lib/docker/containers/ab12/hostname",
];
const DOCKER = [
  '{"BlockIO":"8.19kB / 0B","CPUPerc":"0.15%","Container":"e1","ID":"e1","MemPerc":"0.63%","MemUsage":"12.5MiB / 1.94GiB","Name":"shop-web-1","NetIO":"1.2kB / 0B","PIDs":"5"}',
  '{"BlockIO":"0B / 0B","CPUPerc":"--","Container":"f2","ID":"f2","MemPerc":"--","MemUsage":"-- / --","Name":"starting","NetIO":"--","PIDs":"0"}',
];

const output = (docker: { lines: string[]; exit: string } = { lines: DOCKER, exit: "0" }) => [
  "Welcome to Ubuntu 24.04 LTS", // a login banner before the header is ignored
  "@@hoist:metrics 1",
  "@@hoist:stat",
  ...STAT,
  "@@hoist:meminfo",
  ...MEMINFO,
  "@@hoist:loadavg",
  "0.52 0.58 0.59 1/389 12345",
  "@@hoist:uptime",
  "350735.47 1395932.24",
  "@@hoist:mounts",
  ...MOUNTS,
  "@@hoist:df",
  ...DF,
  "@@hoist:docker",
  ...docker.lines,
  `@@hoist:docker-exit ${docker.exit}`,
  "@@hoist:end",
];

describe("parseMetrics", () => {
  it("reads the script's output into the API shape", () => {
    const probe = parseMetrics(output(), 1_700_000_000_000);
    expect(probe).toEqual({
      point: {
        cpuPercent: 60,
        memory: { totalBytes: 2014856 * 1024, usedBytes: (2014856 - 1123404) * 1024 },
        disks: [
          { mount: "/", totalBytes: 30298176 * 1024, usedBytes: 9632748 * 1024 },
          { mount: "/boot/efi", totalBytes: 106858 * 1024, usedBytes: 6186 * 1024 },
          { mount: "/mnt/my data", totalBytes: 104806400 * 1024, usedBytes: 742184 * 1024 },
        ],
        load: [0.52, 0.58, 0.59],
        containers: [
          { name: "shop-web-1", cpuPercent: 0.15, memoryBytes: Math.round(12.5 * 1024 * 1024) },
          { name: "starting", cpuPercent: 0, memoryBytes: 0 },
        ],
        at: 1_700_000_000_000,
      },
      unsupported: null,
      containers: expect.any(Array),
      uptime: 350735,
    });
  });

  it("takes a failing or missing docker as no containers, whatever it printed", () => {
    for (const exit of ["1", "124", "none"]) {
      const probe = parseMetrics(output({ lines: ["Cannot connect to the Docker daemon"], exit }), 0);
      expect(probe.point?.containers, exit).toEqual([]);
      expect(probe.containers, exit).toEqual([]);
    }
  });

  it("says when the server has no /proc", () => {
    const probe = parseMetrics(
      ["@@hoist:metrics 1", "@@hoist:unsupported Darwin", "@@hoist:docker", "@@hoist:docker-exit none", "@@hoist:end"],
      0,
    );
    expect(probe).toEqual({ point: null, unsupported: "Darwin", containers: [], uptime: null });
    const err = new UnsupportedServerError("Darwin");
    expect([err.status, err.code, err.message]).toEqual([
      422,
      "metrics_unsupported",
      "Metrics need a Linux server (/proc); this one runs Darwin",
    ]);
  });

  it("refuses anything else: truncated output, no header, garbage in a section", () => {
    const full = output();
    const bad = [
      full.slice(0, -1), // no end marker
      full.slice(2), // no header
      full.map((l) => (l.startsWith("MemTotal") ? "MemTotal: lots" : l)),
      full.map((l) => (l.startsWith("0.52") ? "high" : l)),
      full.map((l) => (l.startsWith("cpu ") ? "cpu x y z w" : l)),
      full.map((l) => (l.includes("shop-web-1") ? "{not json" : l)),
      full.map((l) => (l.includes("shop-web-1") ? '{"Name":"x","CPUPerc":"1%","MemUsage":"12 parsecs"}' : l)),
      full.map((l) => (l.startsWith("/dev/sdb1 ") && l.includes("%") ? "/dev/sdb1 lots of room" : l)),
      [...full, "@@hoist:end"], // a section twice
    ];
    for (const [i, lines] of bad.entries()) expect(() => parseMetrics(lines, 0), String(i)).toThrow(MetricsOutputError);
  });
});

describe("the pieces", () => {
  it("cpu: busy share between two samples, 0 when no tick passed", () => {
    expect(cpuPercent(STAT[0], STAT[1])).toBe(60);
    expect(cpuPercent(STAT[0], STAT[0])).toBe(0);
    expect(cpuPercent("cpu 0 0 0 100", "cpu 1 0 0 102")).toBe(33.33);
  });

  it("memory: MemTotal − MemAvailable, or free + cache on kernels without MemAvailable", () => {
    expect(memoryOf(["MemTotal: 1000 kB", "MemFree: 100 kB", "Buffers: 50 kB", "Cached: 250 kB"])).toEqual({
      totalBytes: 1000 * 1024,
      usedBytes: 600 * 1024,
    });
    expect(() => memoryOf(["MemFree: 100 kB"])).toThrow(MetricsOutputError);
  });

  it("disks: without /proc/mounts, pseudo filesystems are still known by name", () => {
    expect(disksOf(DF, []).map((d) => d.mount)).toEqual(["/", "/boot/efi", "/mnt/my data", "/snap/core20/2015"]);
  });

  it("docker sizes and percentages", () => {
    expect(bytesOf("0B")).toBe(0);
    expect(bytesOf("1.2kB")).toBe(1200);
    expect(bytesOf("512KiB")).toBe(512 * 1024);
    expect(bytesOf("1.94GiB")).toBe(Math.round(1.94 * 2 ** 30));
    expect(bytesOf("3MB")).toBe(3_000_000);
    expect(percentOf("250.07%")).toBe(250.07);
    expect(() => percentOf("-1%")).toThrow(MetricsOutputError);
    const many = Array.from({ length: MAX_CONTAINERS + 5 }, (_, i) =>
      JSON.stringify({ Name: `c${i}`, CPUPerc: "0.00%", MemUsage: "1MiB / 1GiB" }),
    );
    expect(containersOf(many)).toHaveLength(MAX_CONTAINERS);
  });
});
