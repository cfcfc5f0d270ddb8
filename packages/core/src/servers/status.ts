import { recordAudit } from "../audit/service.ts";
import { ConflictError, ValidationError } from "../errors.ts";
import type { Deps } from "../ports.ts";
import { cond, queryAll } from "../store/store.ts";
import { type Credentials, type ServerItem, SWEEP_SHARDS, serverKey, sweepShardPk } from "./entity.ts";
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

const STATUS_SCRIPT = [
  `printf 'containers=%s\\n' "$(docker ps -q 2>/dev/null | wc -l | tr -d ' ')"`,
  `printf 'uptime=%s\\n' "$(cut -d' ' -f1 /proc/uptime 2>/dev/null)"`,
].join("; ");

export interface StatusResult {
  status: "online" | "offline";
  runningContainers: number | null;
  uptime: number | null;
  lastChecked: number;
  error?: { kind: string; message: string };
}

/**
 * Connects, reads running containers (`docker ps -q`) and uptime
 * (`/proc/uptime`), and records status, lastChecked and the first host key.
 * A host key mismatch is a 409 the owner resolves by re-pinning.
 */
export async function checkServer(deps: Deps, server: ServerItem): Promise<StatusResult> {
  const lastChecked = Date.now();
  let result: StatusResult;
  try {
    const out = await deps.executor.exec(await targetFor(deps, server), STATUS_SCRIPT, {
      timeoutMs: deps.config.ssh.statusTimeoutMs,
      connectTimeoutMs: deps.config.ssh.connectTimeoutMs,
    });
    await pinHostKey(deps, server, out.hostKeyFingerprint);
    const value = (name: string) => out.stdoutTail.find((l) => l.startsWith(`${name}=`))?.slice(name.length + 1) ?? "";
    const containers = Number.parseInt(value("containers"), 10);
    const uptime = Number.parseFloat(value("uptime"));
    result = {
      status: "online",
      runningContainers: Number.isFinite(containers) ? containers : null,
      uptime: Number.isFinite(uptime) ? Math.floor(uptime) : null,
      lastChecked,
    };
  } catch (err) {
    if (!(err instanceof SshError)) throw err;
    result = {
      status: "offline",
      runningContainers: null,
      uptime: null,
      lastChecked,
      error: { kind: err.kind, message: err.message },
    };
  }
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
  return result;
}

/**
 * The periodic status sweep: every server, shard by shard, checked with
 * bounded concurrency and each under its own timeout, so one slow or dead
 * server never holds up the others.
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
      const result = await checkServer(deps, server).catch((err: unknown) => {
        deps.logger.warn("status sweep: server check failed", { serverId: server.id, error: err });
        return { status: "offline" as const };
      });
      if (result.status === "online") online++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, servers.length) }, worker));
  return { checked: servers.length, online, offline: servers.length - online, ms: Date.now() - started };
}
