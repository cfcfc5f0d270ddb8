import type { Key } from "../store/store.ts";
import { pad } from "../users/entity.ts";

export type AuditItem = Key & {
  entity: "audit";
  id: string;
  userId: string | null;
  action: string;
  resourceType: string;
  resourceId: string | null;
  details: Record<string, unknown>;
  ipAddress: string | null;
  createdAt: number;
  gsi1pk: string;
  gsi1sk: string;
  gsi2pk: string;
  gsi2sk: string;
};

const month = (ms: number) => new Date(ms).toISOString().slice(0, 7);

export const auditKeys = {
  /** A user's own entries, newest first. Entries without a known user live under `anonymous`. */
  byUser: (userId: string | null) => `AUDIT#${userId ?? "anonymous"}`,
  /** Everything, one partition per month (admins page back month by month). */
  byMonth: (yyyyMm: string) => `AUDIT#${yyyyMm}`,
  byResource: (type: string, id: string) => `AUDITRES#${type}#${id}`,
  month,
  sort: (createdAt: number, id: string) => `${pad(createdAt)}#${id}`,
};
