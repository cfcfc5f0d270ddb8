import { owned } from "../owned.ts";
import type { Key } from "../store/store.ts";

export type ServerStatus = "online" | "offline" | "unknown";

/** Sweep shards: the periodic status check reads SERVERS#0..N-1 in parallel, never a Scan. */
export const SWEEP_SHARDS = 8;

export type ServerItem = Key & {
  entity: "server";
  id: string;
  ownerId: string;
  name: string;
  address: string;
  sshUser: string;
  sshPort: number;
  /** KeyVault envelope of `{privateKey?, passphrase?, password?}`, context `{ownerId}`. */
  credentials: string | null;
  status: ServerStatus;
  lastChecked: number | null;
  lastError: { kind: string; message: string } | null;
  hostKeyFingerprint: string | null;
  appCount: number;
  runningAppsCount: number;
  createdAt: number;
  updatedAt: number;
  version: number;
  gsi1pk: string;
  gsi1sk: string;
  gsi2pk: string;
  gsi2sk: string;
};

export interface Server {
  id: string;
  name: string;
  address: string;
  sshUser: string;
  sshPort: number;
  status: ServerStatus;
  runningAppsCount: number;
  lastChecked: number | null;
  lastError: { kind: string; message: string } | null;
  hostKeyFingerprint: string | null;
  hasCredentials: boolean;
  createdAt: number;
  updatedAt: number;
}

export interface Credentials {
  privateKey?: string;
  passphrase?: string;
  password?: string;
}

export const serverKey = (ownerId: string, id: string) => owned.key(ownerId, "SERVER", id);
export const sweepShardPk = (shard: number) => `SERVERS#${shard}`;
export const sweepShardOf = (id: string) => {
  let h = 0;
  for (const ch of id) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return h % SWEEP_SHARDS;
};

export const toServer = (s: ServerItem): Server => ({
  id: s.id,
  name: s.name,
  address: s.address,
  sshUser: s.sshUser,
  sshPort: s.sshPort,
  status: s.status,
  runningAppsCount: s.runningAppsCount,
  lastChecked: s.lastChecked,
  lastError: s.lastError,
  hostKeyFingerprint: s.hostKeyFingerprint,
  hasCredentials: s.credentials !== null,
  createdAt: s.createdAt,
  updatedAt: s.updatedAt,
});
