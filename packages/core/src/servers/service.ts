import type { Actor } from "../actor.ts";
import { auditAction } from "../audit/service.ts";
import { ConditionFailedError, ConflictError, NotFoundError, ValidationError } from "../errors.ts";
import { newId } from "../ids.ts";
import { owned } from "../owned.ts";
import { releaseCounted, takeCounted } from "../plans/counts.ts";
import { planOf } from "../plans/quota.ts";
import type { Deps } from "../ports.ts";
import { cond } from "../store/store.ts";
import {
  type Credentials,
  type Server,
  type ServerItem,
  serverKey,
  sweepShardOf,
  sweepShardPk,
  toServer,
} from "./entity.ts";
import { AddressGuard } from "./networks.ts";
import { checkServer, parsePrivateKey } from "./status.ts";

export interface ServerInput {
  name: string;
  address: string;
  sshUser: string;
  sshPort: number;
  privateKey?: string;
  passphrase?: string;
  password?: string;
}

async function sealCredentials(deps: Pick<Deps, "keyVault">, ownerId: string, input: Partial<ServerInput>) {
  const creds: Credentials = {};
  if (input.privateKey) {
    await parsePrivateKey(input.privateKey, input.passphrase);
    creds.privateKey = input.privateKey;
    if (input.passphrase) creds.passphrase = input.passphrase;
  }
  if (input.password) creds.password = input.password;
  return Object.keys(creds).length > 0 ? deps.keyVault.encrypt(JSON.stringify(creds), { ownerId }) : null;
}

/**
 * Refuses an IP address in a denied network at once. Only literals: a name is
 * resolved and checked when Hoist connects (ssh.ts), since its answer may change.
 */
function checkAddress(deps: Pick<Deps, "config">, address: string | undefined): void {
  if (address === undefined) return;
  const cidr = new AddressGuard(deps.config.ssh).deniedBy(address);
  if (!cidr) return;
  throw new ValidationError("This address is in a network Hoist does not connect to", [
    {
      path: "body.address",
      message: `${address} is in ${cidr}, a network Hoist does not connect to (HOIST_SSH_DENY_NETWORKS)`,
    },
  ]);
}

export async function getServerItem(deps: Pick<Deps, "store">, ownerId: string, id: string): Promise<ServerItem> {
  const item = await deps.store.get<ServerItem>(serverKey(ownerId, id));
  if (!item) throw new NotFoundError("Server");
  return item;
}

export async function createServer(deps: Deps, actor: Actor, input: ServerInput): Promise<Server> {
  checkAddress(deps, input.address);
  const now = Date.now();
  const id = newId("srv");
  const item: ServerItem = {
    ...serverKey(actor.userId, id),
    entity: "server",
    id,
    ownerId: actor.userId,
    name: input.name,
    address: input.address,
    sshUser: input.sshUser,
    sshPort: input.sshPort,
    credentials: await sealCredentials(deps, actor.userId, input),
    status: "unknown",
    lastChecked: null,
    lastError: null,
    hostKeyFingerprint: null,
    appCount: 0,
    runningAppsCount: 0,
    createdAt: now,
    updatedAt: now,
    version: 1,
    ...owned.list(actor.userId, "SERVER", now, id),
    gsi2pk: sweepShardPk(sweepShardOf(id)),
    gsi2sk: id,
  };
  // With the owner's server count, conditional on the plan's limit (402 over it).
  const plan = await planOf(deps, actor.userId, actor);
  await takeCounted(deps, actor.userId, "servers", plan, [{ put: item, condition: cond.notExists() }]);
  await auditAction(deps, actor, "server", "server.create", id, { name: input.name, address: input.address });
  return toServer(item);
}

export async function listServers(
  deps: Pick<Deps, "store">,
  ownerId: string,
  cursor: string | undefined,
  limit: number,
  status?: ServerItem["status"],
) {
  const page = await deps.store.query<ServerItem>({
    index: "gsi1",
    pk: owned.listPk(ownerId, "SERVER"),
    cursor,
    limit,
    // Servers never had a status until first checked: "unknown" is also the absent one.
    filter:
      status === undefined
        ? undefined
        : status === "unknown"
          ? cond.or(cond.attrNotExists("status"), cond.eq("status", "unknown"))
          : cond.eq("status", status),
  });
  return { items: page.items.map(toServer), nextCursor: page.nextCursor };
}

/**
 * Partial update. New credentials replace the old ones; a new address or port
 * forgets the pinned host key (it is another machine); `hostKeyFingerprint:
 * null` re-pins on the next connection.
 */
export async function updateServer(
  deps: Deps,
  actor: Actor,
  id: string,
  patch: Partial<ServerInput> & { hostKeyFingerprint?: null },
): Promise<Server> {
  checkAddress(deps, patch.address);
  const before = await getServerItem(deps, actor.userId, id);
  const set: Partial<ServerItem> = { updatedAt: Date.now(), version: before.version + 1 };
  for (const k of ["name", "address", "sshUser", "sshPort"] as const) {
    if (patch[k] !== undefined) (set as Record<string, unknown>)[k] = patch[k];
  }
  if (patch.privateKey || patch.password) set.credentials = await sealCredentials(deps, actor.userId, patch);
  const moved =
    (patch.address ?? before.address) !== before.address || (patch.sshPort ?? before.sshPort) !== before.sshPort;
  if (patch.hostKeyFingerprint === null || moved) set.hostKeyFingerprint = null;
  let after: ServerItem;
  try {
    after = await deps.store.update<ServerItem>(serverKey(actor.userId, id), {
      set,
      condition: cond.eq("version", before.version),
    });
  } catch (err) {
    if (err instanceof ConditionFailedError)
      throw new ConflictError("The server changed meanwhile; read it again and retry");
    throw err;
  }
  const changed = Object.keys(set).filter((k) => !["updatedAt", "version", "credentials"].includes(k));
  await auditAction(deps, actor, "server", "server.update", id, {
    changed,
    credentialsReplaced: set.credentials !== undefined,
    ...(set.hostKeyFingerprint === null && before.hostKeyFingerprint
      ? { hostKeyUnpinned: before.hostKeyFingerprint }
      : {}),
  });
  return toServer(after);
}

export async function deleteServer(deps: Deps, actor: Actor, id: string): Promise<void> {
  const before = await getServerItem(deps, actor.userId, id);
  try {
    // With the owner's server count; conditional on the server being there, so a racing delete counts once.
    await releaseCounted(deps, actor.userId, "servers", [
      {
        delete: serverKey(actor.userId, id),
        condition: cond.and(cond.exists(), cond.or(cond.attrNotExists("appCount"), cond.eq("appCount", 0))),
      },
    ]);
  } catch (err) {
    if (err instanceof ConditionFailedError) {
      await getServerItem(deps, actor.userId, id); // gone meanwhile: 404
      throw new ConflictError("This server still has apps; move or delete them first");
    }
    throw err;
  }
  await auditAction(deps, actor, "server", "server.delete", id, { name: before.name });
}

/** `GET /api/servers/:id/status`: connects now and records the outcome. */
export async function serverStatus(deps: Deps, actor: Actor, id: string) {
  const server = await getServerItem(deps, actor.userId, id);
  if (!server.credentials)
    throw new ValidationError("This server has no SSH credentials yet; add a privateKey or password");
  return checkServer(deps, server);
}
