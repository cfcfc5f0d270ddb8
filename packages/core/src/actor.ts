import type { Context } from "hono";
import type { AppEnv } from "./http/env.ts";
import { clientIp } from "./http/middleware/client-ip.ts";

/** Who is acting: the signed-in user's id and address, for tenancy and the audit log. */
export interface Actor {
  userId: string;
  ip: string | null;
}

export const actorOf = (c: Context<AppEnv>): Actor => ({ userId: c.var.user.id, ip: clientIp(c) });

/** Scheduled and queued work acts as the owner, from no address. */
export const systemActor = (userId: string): Actor => ({ userId, ip: null });
