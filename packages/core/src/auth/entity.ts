import type { Key } from "../store/store.ts";

/** Keys of the short-lived auth items; every one carries a TTL (`expiresAt`, seconds). */
export const authKeys = {
  refresh: (tokenHash: string): Key => ({ pk: `REFRESH#${tokenHash}`, sk: "REFRESH" }),
  family: (familyId: string): Key => ({ pk: `FAMILY#${familyId}`, sk: "FAMILY" }),
  blockedJti: (jti: string): Key => ({ pk: `JTI#${jti}`, sk: "JTI" }),
  oauthState: (state: string): Key => ({ pk: `OAUTH#${state}`, sk: "STATE" }),
  lockout: (subject: string): Key => ({ pk: `LOCK#${subject}`, sk: "LOCK" }),
  rate: (scope: string, who: string, window: number): Key => ({ pk: `RATE#${scope}#${who}#${window}`, sk: "RATE" }),
};

export type RefreshItem = Key & {
  entity: "refresh-token";
  userId: string;
  familyId: string;
  createdAt: number;
  spentAt?: number;
  /** The successor issued when it was spent, sealed by the KeyVault: handed out again within the grace window. */
  successor?: string;
  expiresAt: number;
};

export type FamilyItem = Key & {
  entity: "token-family";
  userId: string;
  revokedAt?: number;
  revokedReason?: string;
  createdAt: number;
  expiresAt: number;
};
