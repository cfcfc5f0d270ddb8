import type { Context } from "hono";
import { effectiveRole } from "./auth/scopes.ts";
import type { AppEnv } from "./http/env.ts";
import { clientIp } from "./http/middleware/client-ip.ts";

/** Who is acting: the signed-in user's id and address, for tenancy and the audit log. */
export interface Actor {
  userId: string;
  ip: string | null;
  /** Acting with an admin's rights: an admin signed in, or an admin's API token with the `admin` scope. */
  admin?: boolean;
  /** The user's plan as recorded (null: the default plan); absent for system work, which reads it (plans/quota.ts). */
  plan?: string | null;
}

export const actorOf = (c: Context<AppEnv>): Actor => ({
  userId: c.var.user.id,
  ip: clientIp(c),
  admin: effectiveRole(c) === "admin",
  plan: c.var.user.plan ?? null,
});

/** Scheduled and queued work acts as the owner, from no address. */
export const systemActor = (userId: string): Actor => ({ userId, ip: null });
