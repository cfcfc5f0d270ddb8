import * as z from "zod/mini";
import "../zod-mini.ts";
import { HoistError } from "../errors.ts";

/**
 * Server metrics (API.md § Operating a running app): one POSIX-sh script read
 * in one SSH command, and a strict parser of its output. The status sweep runs
 * the same script, so a sweep costs one command per server: its success says
 * "online", and the running containers and uptime come from the same output.
 */

export type DiskUsage = {
  mount: string;
  totalBytes: number;
  usedBytes: number;
};
export type ContainerStats = {
  name: string;
  cpuPercent: number;
  memoryBytes: number;
};
export type MetricsPoint = {
  cpuPercent: number;
  memory: { totalBytes: number; usedBytes: number };
  disks: DiskUsage[];
  load: [number, number, number];
  containers: ContainerStats[];
  at: number;
};

/** What one run of {@link METRICS_SCRIPT} tells. */
export interface Probe {
  /** null when the server has no `/proc` (not Linux): `unsupported` says what it is. */
  point: MetricsPoint | null;
  unsupported: string | null;
  /** Running containers, as `docker stats` lists them ([] without Docker, or when it does not answer). */
  containers: ContainerStats[];
  /** Seconds since boot (`/proc/uptime`), when known. */
  uptime: number | null;
}

/** Stored points and WebSocket messages stay small: a host with more lists the first ones. */
export const MAX_DISKS = 50;
export const MAX_CONTAINERS = 200;
/** Output lines read at most (a Docker host lists an overlay mount per container). */
export const MAX_OUTPUT_LINES = 5000;

const M = "@@hoist:";

/**
 * The script. CPU use is the busy share of the aggregate `cpu` line of
 * `/proc/stat` between two samples 300 ms apart: the kernel counts in ticks
 * of 10 ms (USER_HZ = 100) per CPU, so 300 ms is at least 30 ticks per CPU,
 * a resolution of about 3 % on one CPU and finer on more, while keeping the
 * sweep's command short (a longer sample holds each SSH channel longer for
 * little gain; a shorter one reads mostly rounding). `sleep 0.3` falls back to
 * `sleep 1` where sleep takes whole seconds only. `df` (5 s) and
 * `docker stats --no-stream` (8 s; it samples for about 2 s itself) are bound
 * with `timeout` where it exists, so a hung NFS mount or Docker daemon cannot
 * outlast the status timeout (15 s by default); a Docker that fails or is not
 * there yields no containers, not an error.
 */
export const METRICS_SCRIPT = `export LC_ALL=C
T5=; T8=; if command -v timeout >/dev/null 2>&1; then T5='timeout 5'; T8='timeout 8'; fi
echo '${M}metrics 1'
if [ -r /proc/stat ] && [ -r /proc/meminfo ] && [ -r /proc/loadavg ]; then
  echo '${M}stat'; head -n 1 /proc/stat
  sleep 0.3 2>/dev/null || sleep 1
  head -n 1 /proc/stat
  echo '${M}meminfo'; grep -E '^(MemTotal|MemAvailable|MemFree|Buffers|Cached):' /proc/meminfo
  echo '${M}loadavg'; cat /proc/loadavg
  echo '${M}uptime'; cat /proc/uptime 2>/dev/null
  echo '${M}mounts'; cut -d' ' -f1-3 /proc/mounts 2>/dev/null
  echo '${M}df'; $T5 df -Pk 2>/dev/null
else
  echo "${M}unsupported $(uname -s 2>/dev/null)"
fi
echo '${M}docker'
if command -v docker >/dev/null 2>&1; then
  $T8 docker stats --no-stream --format '{{json .}}' 2>/dev/null
  echo "${M}docker-exit $?"
else
  echo '${M}docker-exit none'
fi
echo '${M}end'`;

/** The output could not be read as the script's: a 502, the server answered something else. */
export class MetricsOutputError extends HoistError {
  override name = "MetricsOutputError";
  constructor(detail: string) {
    super(502, "metrics_unreadable", `Could not read the server's metrics: ${detail}`);
  }
}

/** The server is not Linux (no `/proc`): metrics cannot be read there. */
export class UnsupportedServerError extends HoistError {
  override name = "UnsupportedServerError";
  constructor(system: string) {
    super(
      422,
      "metrics_unsupported",
      `Metrics need a Linux server (/proc); this one ${system ? `runs ${system}` : "has no /proc"}`,
    );
  }
}

/** Filesystems that hold no disk: memory, kernel interfaces, container layers, read-only images. */
const PSEUDO_FS = new Set([
  "tmpfs",
  "devtmpfs",
  "overlay",
  "squashfs",
  "ramfs",
  "proc",
  "sysfs",
  "devpts",
  "cgroup",
  "cgroup2",
  "mqueue",
  "debugfs",
  "tracefs",
  "securityfs",
  "pstore",
  "bpf",
  "autofs",
  "configfs",
  "fusectl",
  "hugetlbfs",
  "rpc_pipefs",
  "nsfs",
  "binfmt_misc",
  "efivarfs",
  "fuse.lxcfs",
  "shm",
  "none",
  "udev",
]);

type Sections = Map<string, string[]>;

/** Splits the output at the markers; lines before the first one (a login banner) are ignored. */
function sectionsOf(lines: string[]): { sections: Sections; args: Map<string, string> } {
  const sections: Sections = new Map();
  const args = new Map<string, string>();
  let current: string[] | undefined;
  for (const line of lines) {
    if (line.startsWith(M)) {
      const [name = "", ...rest] = line.slice(M.length).split(" ");
      if (sections.has(name)) throw new MetricsOutputError(`section ${name} twice`);
      current = [];
      sections.set(name, current);
      args.set(name, rest.join(" ").trim());
    } else current?.push(line);
  }
  if (args.get("metrics") !== "1") throw new MetricsOutputError("no metrics header (is the login shell printing?)");
  if (!sections.has("end")) throw new MetricsOutputError("the output ended early");
  return { sections, args };
}

const num = (text: string | undefined, what: string): number => {
  const n = text !== undefined && /^\d+(\.\d+)?$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isFinite(n)) throw new MetricsOutputError(`${what} is not a number (${JSON.stringify(text)})`);
  return n;
};
const round2 = (n: number) => Math.round(n * 100) / 100;

/** Busy share of the aggregate CPU line between two samples (user … steal; guest time is already in user). */
export function cpuPercent(first: string | undefined, second: string | undefined): number {
  const ticks = (line: string | undefined) => {
    const fields = line?.trim().split(/\s+/) ?? [];
    if (fields[0] !== "cpu" || fields.length < 5) throw new MetricsOutputError("no cpu line in /proc/stat");
    return fields.slice(1, 9).map((f, i) => num(f, `/proc/stat field ${i + 1}`));
  };
  const a = ticks(first);
  const b = ticks(second);
  const idle = (t: number[]) => (t[3] ?? 0) + (t[4] ?? 0); // idle + iowait
  const total = (t: number[]) => t.reduce((s, v) => s + v, 0);
  const dTotal = total(b) - total(a);
  if (dTotal <= 0) return 0;
  const busy = dTotal - (idle(b) - idle(a));
  return round2(Math.min(100, Math.max(0, (busy / dTotal) * 100)));
}

export function memoryOf(lines: string[]): MetricsPoint["memory"] {
  const kb = new Map<string, number>();
  for (const line of lines) {
    const m = /^(\w+):\s+(\d+)\s*kB$/.exec(line.trim());
    if (!m) throw new MetricsOutputError(`unexpected /proc/meminfo line ${JSON.stringify(line)}`);
    kb.set(m[1] as string, Number(m[2]));
  }
  const total = kb.get("MemTotal");
  if (total === undefined) throw new MetricsOutputError("no MemTotal in /proc/meminfo");
  // Kernels before 3.14 have no MemAvailable: free plus page cache is the classic estimate.
  const available =
    kb.get("MemAvailable") ?? (kb.get("MemFree") ?? 0) + (kb.get("Buffers") ?? 0) + (kb.get("Cached") ?? 0);
  return { totalBytes: total * 1024, usedBytes: Math.max(0, total - available) * 1024 };
}

export function loadOf(line: string | undefined): MetricsPoint["load"] {
  const [one, five, fifteen] = line?.trim().split(/\s+/) ?? [];
  return [num(one, "load (1 min)"), num(five, "load (5 min)"), num(fifteen, "load (15 min)")];
}

/** `/proc/mounts` escapes spaces and the like as octal (`\040`). */
const unescapeMount = (s: string) =>
  s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));

/**
 * `df -Pk` joined with `/proc/mounts` (device, mount point, type) for the
 * filesystem types: pseudo filesystems and empty ones left out, one mount per
 * device (the shortest path: bind mounts of `/` are `/`), sorted by mount.
 */
export function disksOf(dfLines: string[], mountLines: string[]): DiskUsage[] {
  const typeOf = new Map<string, string>();
  for (const line of mountLines) {
    const [, mount, type] = line.split(" ");
    if (mount && type) typeOf.set(unescapeMount(mount), type); // a later mount shadows an earlier one
  }
  const byDevice = new Map<string, DiskUsage>();
  for (const [i, line] of dfLines.entries()) {
    if (i === 0 && line.startsWith("Filesystem")) continue;
    if (line.trim() === "") continue;
    const m = /^(\S.*?)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+%|-)\s+(\/.*)$/.exec(line);
    if (!m) throw new MetricsOutputError(`unexpected df line ${JSON.stringify(line)}`);
    const [, device = "", blocks = "0", used = "0", , , mount = ""] = m;
    const type = typeOf.get(mount) ?? device;
    if (PSEUDO_FS.has(type) || PSEUDO_FS.has(device) || Number(blocks) === 0) continue;
    const disk = { mount, totalBytes: Number(blocks) * 1024, usedBytes: Number(used) * 1024 };
    const seen = byDevice.get(device);
    if (!seen || mount.length < seen.mount.length || (mount.length === seen.mount.length && mount < seen.mount))
      byDevice.set(device, disk);
  }
  return [...byDevice.values()]
    .sort((a, b) => (a.mount < b.mount ? -1 : a.mount > b.mount ? 1 : 0))
    .slice(0, MAX_DISKS);
}

const UNITS: Record<string, number> = { B: 1, kB: 1e3, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, PB: 1e15 };
for (const [i, p] of ["KiB", "MiB", "GiB", "TiB", "PiB"].entries()) UNITS[p] = 1024 ** (i + 1);

/** A size as Docker writes it (`12.5MiB`, `1.2kB`, `0B`) in bytes; `--` (no sample yet) is 0. */
export function bytesOf(text: string): number {
  const t = text.trim();
  if (t === "--") return 0;
  const m = /^(\d+(?:\.\d+)?)\s*([A-Za-z]+)$/.exec(t);
  const unit = m ? UNITS[m[2] as string] : undefined;
  if (!m || unit === undefined) throw new MetricsOutputError(`unexpected size ${JSON.stringify(text)}`);
  return Math.round(Number(m[1]) * unit);
}

/** `0.15%` → 0.15; `--` (no sample yet) is 0. */
export function percentOf(text: string): number {
  const t = text.trim();
  if (t === "--") return 0;
  const m = /^(\d+(?:\.\d+)?)%$/.exec(t);
  if (!m) throw new MetricsOutputError(`unexpected percentage ${JSON.stringify(text)}`);
  return Number(m[1]);
}

const DockerStatsLine = z.object({ Name: z.string().check(z.minLength(1)), CPUPerc: z.string(), MemUsage: z.string() });

/** `docker stats --no-stream --format '{{json .}}'`: one JSON object per running container. */
export function containersOf(lines: string[]): ContainerStats[] {
  const containers: ContainerStats[] = [];
  for (const line of lines) {
    if (line.trim() === "") continue;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      throw new MetricsOutputError(`unexpected docker stats line ${JSON.stringify(line.slice(0, 200))}`);
    }
    const parsed = DockerStatsLine.safeParse(json);
    if (!parsed.success) throw new MetricsOutputError("a docker stats line lacks Name, CPUPerc or MemUsage");
    const { Name, CPUPerc, MemUsage } = parsed.data;
    containers.push({
      name: Name,
      cpuPercent: percentOf(CPUPerc),
      memoryBytes: bytesOf(MemUsage.split("/")[0] ?? ""),
    });
  }
  return containers.slice(0, MAX_CONTAINERS);
}

/** Reads the output of {@link METRICS_SCRIPT}; throws {@link MetricsOutputError} on anything else. */
export function parseMetrics(lines: string[], at: number): Probe {
  const { sections, args } = sectionsOf(lines);
  const dockerExit = args.get("docker-exit");
  if (dockerExit === undefined) throw new MetricsOutputError("no docker section");
  // Docker missing, failing (no daemon) or timed out: no containers, not an error.
  const containers = dockerExit === "0" ? containersOf(sections.get("docker") ?? []) : [];
  if (sections.has("unsupported")) {
    return { point: null, unsupported: args.get("unsupported") ?? "", containers, uptime: null };
  }
  const section = (name: string) => {
    const s = sections.get(name);
    if (!s) throw new MetricsOutputError(`no ${name} section`);
    return s;
  };
  const stat = section("stat");
  const uptimeText = section("uptime")[0]?.trim().split(/\s+/)[0];
  const uptime = uptimeText && /^\d+(\.\d+)?$/.test(uptimeText) ? Math.floor(Number(uptimeText)) : null;
  return {
    point: {
      cpuPercent: cpuPercent(stat[0], stat[1]),
      memory: memoryOf(section("meminfo")),
      disks: disksOf(section("df"), section("mounts")),
      load: loadOf(section("loadavg")[0]),
      containers,
      at,
    },
    unsupported: null,
    containers,
    uptime,
  };
}
