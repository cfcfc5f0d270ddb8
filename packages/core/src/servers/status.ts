import { recordAudit } from "../audit/service.ts";
import { ConflictError, ValidationError } from "../errors.ts";
import type { Deps } from "../ports.ts";
import type { ServerMessage } from "../realtime/messages.ts";
import { publish } from "../realtime/publish.ts";
import { cond, queryAll } from "../store/store.ts";
import { type Credentials, type ServerItem, SWEEP_SHARDS, serverKey, sweepShardPk } from "./entity.ts";
import {
  MAX_OUTPUT_LINES,
  METRICS_SCRIPT,
  MetricsOutputError,
  type MetricsPoint,
  type Probe,
  parseMetrics,
} from "./metrics.ts";
import { metricsPoints } from "./metrics-entity.ts";
import type { SshTarget } from "./ssh.ts";
import { SshError } from "./ssh-error.ts";

/**
 * Validates a private key (and its passphrase) before it is stored, with
 * ssh2's key parser alone (`ssh2.utils.parseKey`), loaded on first use: the
 * http Lambda does not carry ssh2's client, ciphers and key exchange.
 */
export async function parsePrivateKey(privateKey: string, passphrase?: string): Promise<void> {
  const { default: keyParser } = await import("ssh2/lib/protocol/keyParser.js");
  const parsed = keyParser.parseKey(privateKey, passphrase);
  if (parsed instanceof Error || (Array.isArray(parsed) ? parsed.length === 0 : !parsed.isPrivateKey())) {
    const hint =
      parsed instanceof Error && /passphrase|decrypt/i.test(parsed.message) ? " or the passphrase is wrong" : "";
    throw new ValidationError("Invalid SSH key", [
      { path: "body.privateKey", message: `Not a private key in OpenSSH or PEM format${hint}` },
    ]);
  }
}

/** The server as an SSH target, credentials decrypted (never logged, never returned). */
export async function targetFor(deps: Pick<Deps, "keyVault">, server: ServerItem): Promise<SshTarget> {
  if (!server.credentials)
    throw new ValidationError("This server has no SSH credentials yet; add a privateKey or password");
  const creds = JSON.parse(await deps.keyVault.decrypt(server.credentials, { ownerId: server.ownerId })) as Credentials;
  return {
    host: server.address,
    port: server.sshPort,
    username: server.sshUser,
    ...creds,
    hostKeyFingerprint: server.hostKeyFingerprint,
  };
}

/**
 * Pins the host key the first successful connection saw. Conditional, so two
 * racing first connections cannot pin different keys.
 */
export async function pinHostKey(deps: Pick<Deps, "store">, server: ServerItem, fingerprint: string): Promise<void> {
  if (server.hostKeyFingerprint) return;
  await deps.store
    .update(serverKey(server.ownerId, server.id), {
      set: { hostKeyFingerprint: fingerprint },
      condition: cond.or(cond.attrNotExists("hostKeyFingerprint"), cond.eq("hostKeyFingerprint", null)),
    })
    .catch(() => undefined);
  server.hostKeyFingerprint = fingerprint;
}

export interface StatusResult {
  status: "online" | "offline";
  runningContainers: number | null;
  uptime: number | null;
  lastChecked: number;
  error?: { kind: string; message: string };
}

/** A check's outcome: the status, and what the metrics script read when the server answered. */
export interface Checked {
  result: StatusResult;
  /** null when offline; its `point` is null on a server without /proc. */
  probe: Probe | null;
  /** Why the server is offline. */
  sshError?: SshError;
  /** The server answered, but not with the script's output. */
  outputError?: MetricsOutputError;
}

/** Runs the metrics script (metrics.ts) and parses its output, all lines of it up to a bound. */
async function runProbe(deps: Deps, server: ServerItem): Promise<Probe> {
  const lines: string[] = [];
  const out = await deps.executor.exec(await targetFor(deps, server), METRICS_SCRIPT, {
    timeoutMs: deps.config.ssh.statusTimeoutMs,
    connectTimeoutMs: deps.config.ssh.connectTimeoutMs,
    tailLines: 5,
    onLine: (stream, line) => {
      if (stream === "stdout" && lines.length < MAX_OUTPUT_LINES) lines.push(line);
    },
  });
  await pinHostKey(deps, server, out.hostKeyFingerprint);
  return parseMetrics(lines, Date.now());
}

/**
 * Connects and runs the metrics script once: its success says "online", and
 * its output gives running containers (`docker stats`), uptime
 * (`/proc/uptime`) and a metrics point. Records status, lastChecked and the
 * first host key. A host key mismatch is a 409 the owner resolves by re-pinning.
 */
export async function probeServer(deps: Deps, server: ServerItem): Promise<Checked> {
  const lastChecked = Date.now();
  let checked: Checked;
  try {
    const probe = await runProbe(deps, server);
    checked = {
      result: {
        status: "online",
        runningContainers: probe.containers.length,
        uptime: probe.uptime,
        lastChecked,
      },
      probe,
    };
  } catch (err) {
    if (err instanceof MetricsOutputError) {
      // It answered over SSH: online, with nothing readable.
      checked = {
        result: { status: "online", runningContainers: null, uptime: null, lastChecked },
        probe: null,
        outputError: err,
      };
    } else {
      if (!(err instanceof SshError)) throw err;
      checked = {
        result: {
          status: "offline",
          runningContainers: null,
          uptime: null,
          lastChecked,
          error: { kind: err.kind, message: err.message },
        },
        probe: null,
        sshError: err,
      };
    }
  }
  const { result } = checked;
  await deps.store
    .update(serverKey(server.ownerId, server.id), {
      set: { status: result.status, lastChecked, lastError: result.error ?? null },
      condition: cond.exists(),
    })
    .catch(() => undefined);
  if (result.error?.kind === "host-key") {
    await recordAudit(deps, {
      userId: server.ownerId,
      action: "server.host_key_mismatch",
      resourceType: "server",
      resourceId: server.id,
      details: { pinned: server.hostKeyFingerprint },
    });
    throw new ConflictError(
      `${result.error.message}. If the server was rebuilt, re-pin with PUT {"hostKeyFingerprint": null}`,
    );
  }
  return checked;
}

/** `GET /api/servers/:id/status` and the sweep: see {@link probeServer}. */
export async function checkServer(deps: Deps, server: ServerItem): Promise<StatusResult> {
  return (await probeServer(deps, server)).result;
}

/** The channel a server's points are pushed on (realtime/subscribe.ts authorizes it: the owner only). */
export const serverChannel = (serverId: string) => `server:${serverId}`;

/** Stores the sweep's point and pushes it to `server:<id>`; a failure is logged, the server stays as checked. */
async function recordPoint(deps: Deps, server: ServerItem, point: MetricsPoint): Promise<void> {
  try {
    await metricsPoints.put(deps.store, server.ownerId, server.id, point);
    const message: ServerMessage = { type: "metrics", serverId: server.id, point };
    await publish(deps, serverChannel(server.id), [message]);
  } catch (err) {
    deps.logger.warn("status sweep: storing metrics failed", { serverId: server.id, error: err });
  }
}

/**
 * The periodic status sweep: every server, shard by shard, checked with
 * bounded concurrency and each under its own timeout, so one slow or dead
 * server never holds up the others. Each reachable Linux server gets one
 * metrics point per sweep, stored (kept 7 days) and pushed to `server:<id>`.
 */
export async function sweepServers(
  deps: Deps,
  concurrency = 16,
): Promise<{ checked: number; online: number; offline: number; ms: number }> {
  const started = Date.now();
  const servers: ServerItem[] = [];
  const shards = await Promise.all(
    Array.from({ length: SWEEP_SHARDS }, (_, shard) =>
      queryAll<ServerItem>(deps.store, { index: "gsi2", pk: sweepShardPk(shard) }),
    ),
  );
  servers.push(...shards.flat().filter((s) => s.credentials));
  let online = 0;
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < servers.length; i = next++) {
      const server = servers[i] as ServerItem;
      const checked = await probeServer(deps, server).catch((err: unknown) => {
        deps.logger.warn("status sweep: server check failed", { serverId: server.id, error: err });
        return undefined;
      });
      if (checked?.result.status === "online") online++;
      if (checked?.outputError)
        deps.logger.warn("status sweep: unreadable metrics", { serverId: server.id, error: checked.outputError });
      if (checked?.probe?.point) await recordPoint(deps, server, checked.probe.point);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, servers.length) }, worker));
  return { checked: servers.length, online, offline: servers.length - online, ms: Date.now() - started };
}
