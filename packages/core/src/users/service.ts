import { recordAudit } from "../audit/service.ts";
import { ConditionFailedError, ConflictError, NotFoundError, ValidationError } from "../errors.ts";
import type { Deps } from "../ports.ts";
import { closeUserSockets, closeUserSocketsOn } from "../realtime/close.ts";
import { cond } from "../store/store.ts";
import { type Role, toUser, type User, type UserItem, userKeys } from "./entity.ts";

export async function listUsers(deps: Pick<Deps, "store">, limit: number, cursor?: string) {
  const page = await deps.store.query<UserItem>({ index: userKeys.listIndex, pk: userKeys.listPk, limit, cursor });
  return { items: page.items.map(toUser), nextCursor: page.nextCursor };
}

export async function getUser(deps: Pick<Deps, "store">, id: string): Promise<User> {
  const user = await deps.store.get<UserItem>(userKeys.user(id));
  if (!user) throw new NotFoundError("User");
  return toUser(user);
}

/**
 * An admin changes a user's role or plan, or disables them. Takes effect at
 * once (every request reloads the user). Admins cannot demote or disable
 * themselves, so there is always an admin left. A plan must be one of the
 * configured ones (HOIST_PLANS_FILE); what the user holds beyond a smaller
 * plan's limits stays, but nothing more is allowed until under them.
 */
export async function updateUser(
  deps: Pick<Deps, "store" | "broadcaster" | "logger" | "config">,
  admin: UserItem,
  id: string,
  patch: { role?: Role; disabled?: boolean; plan?: string },
  ip: string,
): Promise<User> {
  if (id === admin.id && (patch.role === "member" || patch.disabled === true)) {
    throw new ConflictError("You cannot demote or disable your own account");
  }
  const plans = deps.config.plans;
  if (patch.plan !== undefined && !Object.hasOwn(plans.byName, patch.plan)) {
    const known = Object.keys(plans.byName).join(", ");
    throw new ValidationError(`No plan named ${JSON.stringify(patch.plan)}; the plans are ${known}`, [
      { path: "body.plan", message: `Not a configured plan (one of: ${known})` },
    ]);
  }
  const before = await deps.store.get<UserItem>(userKeys.user(id));
  if (!before) throw new NotFoundError("User");
  let after: UserItem;
  try {
    after = await deps.store.update<UserItem>(userKeys.user(id), {
      set: { ...patch, updatedAt: Date.now(), version: before.version + 1 },
      condition: cond.eq("version", before.version),
    });
  } catch (err) {
    if (err instanceof ConditionFailedError)
      throw new ConflictError("The user changed meanwhile; read it again and retry");
    throw err;
  }
  const changes: [string, Record<string, unknown>][] = [];
  if (patch.role !== undefined && patch.role !== before.role)
    changes.push(["user.role_changed", { from: before.role, to: patch.role }]);
  if (patch.disabled !== undefined && patch.disabled !== before.disabled) {
    changes.push([patch.disabled ? "user.disabled" : "user.enabled", {}]);
  }
  const planBefore = plans.get(before.plan).name;
  if (patch.plan !== undefined && patch.plan !== planBefore)
    changes.push(["user.plan_changed", { from: planBefore, to: patch.plan }]);
  for (const [action, details] of changes) {
    await recordAudit(deps, { userId: admin.id, action, resourceType: "user", resourceId: id, details, ipAddress: ip });
  }
  // Sockets were authorized when they connected and subscribed: end what the user may no longer see.
  if (after.disabled && !before.disabled) await closeUserSockets(deps, id, "Account disabled");
  else if (before.role === "admin" && after.role !== "admin")
    await closeUserSocketsOn(deps, id, "logs:all", "No longer an admin");
  return toUser(after);
}
