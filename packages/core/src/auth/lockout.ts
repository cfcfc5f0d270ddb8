import { LockedError } from "../errors.ts";
import type { Deps } from "../ports.ts";
import { authKeys } from "./entity.ts";

type LockDeps = Pick<Deps, "store" | "config">;

/**
 * Failed sign-ins per subject (the account's id, or the identifier typed when
 * no such account exists, so a locked answer never tells which). After N
 * failures within the window the subject is locked until the window passes.
 */
export async function assertNotLocked(deps: LockDeps, subject: string, now = Date.now()): Promise<void> {
  const item = await deps.store.get<{ pk: string; sk: string; failures: number; expiresAt: number }>(
    authKeys.lockout(subject),
  );
  if (item && item.failures >= deps.config.auth.lockoutAttempts) {
    const retryAfter = Math.max(1, item.expiresAt - Math.floor(now / 1000));
    throw new LockedError("Too many failed sign-ins; try again later", retryAfter);
  }
}

export async function recordFailure(deps: LockDeps, subject: string, now = Date.now()): Promise<void> {
  await deps.store.update(authKeys.lockout(subject), {
    add: { failures: 1 },
    set: { entity: "login-failures", expiresAt: Math.floor(now / 1000) + deps.config.auth.lockoutSeconds },
  });
}

export async function clearFailures(deps: LockDeps, subject: string): Promise<void> {
  await deps.store.delete(authKeys.lockout(subject));
}
