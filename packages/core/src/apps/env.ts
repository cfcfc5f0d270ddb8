import type { Actor } from "../actor.ts";
import { recordAudit } from "../audit/service.ts";
import { ValidationError } from "../errors.ts";
import type { Deps } from "../ports.ts";
import type { Key } from "../store/store.ts";
import { appEnvKey } from "./entity.ts";

export const ENV_LIMITS = { count: 200, nameLength: 128, valueBytes: 32 * 1024, totalBytes: 128 * 1024 };
export const MASK = "••••";
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

type EnvItem = Key & { entity: "app-env"; envelope: string; names: string[]; updatedAt: number };

/** The app's variables, decrypted. Only the worker and the owner's `?reveal=true` read values. */
export async function readEnv(
  deps: Pick<Deps, "store" | "keyVault">,
  ownerId: string,
  appId: string,
): Promise<Record<string, string>> {
  const item = await deps.store.get<EnvItem>(appEnvKey(ownerId, appId));
  if (!item) return {};
  return JSON.parse(await deps.keyVault.decrypt(item.envelope, { ownerId })) as Record<string, string>;
}

export function validateEnv(env: Record<string, string>): void {
  const errors: { path: string; message: string }[] = [];
  const names = Object.keys(env);
  if (names.length > ENV_LIMITS.count) errors.push({ path: "body", message: `At most ${ENV_LIMITS.count} variables` });
  let total = 0;
  for (const [name, value] of Object.entries(env)) {
    if (!NAME.test(name) || name.length > ENV_LIMITS.nameLength) {
      errors.push({
        path: `body.${name.slice(0, 64)}`,
        message: "Names are letters, digits and _ (not first), up to 128",
      });
    }
    const bytes = Buffer.byteLength(value);
    total += bytes + name.length;
    if (bytes > ENV_LIMITS.valueBytes)
      errors.push({ path: `body.${name}`, message: `Value larger than ${ENV_LIMITS.valueBytes} bytes` });
    if (value.includes("\0")) errors.push({ path: `body.${name}`, message: "Values cannot contain NUL" });
  }
  if (total > ENV_LIMITS.totalBytes)
    errors.push({ path: "body", message: `All variables together exceed ${ENV_LIMITS.totalBytes} bytes` });
  if (errors.length > 0) throw new ValidationError("Invalid environment variables", errors);
}

export const masked = (env: Record<string, string>) => Object.fromEntries(Object.keys(env).map((k) => [k, MASK]));

/** The stored form of an app's variables (one envelope bound to the owner), for a write of its own or a caller's transaction. */
export async function envItem(
  deps: Pick<Deps, "keyVault">,
  ownerId: string,
  appId: string,
  env: Record<string, string>,
): Promise<EnvItem> {
  return {
    ...appEnvKey(ownerId, appId),
    entity: "app-env",
    envelope: await deps.keyVault.encrypt(JSON.stringify(env), { ownerId }),
    names: Object.keys(env),
    updatedAt: Date.now(),
  };
}

/** PUT replaces all; PATCH upserts, `null` deletes. Stored as one KeyVault envelope bound to the owner. */
export async function writeEnv(
  deps: Deps,
  actor: Actor,
  appId: string,
  change: { replace: Record<string, string> } | { patch: Record<string, string | null> },
): Promise<Record<string, string>> {
  const current = "replace" in change ? {} : await readEnv(deps, actor.userId, appId);
  const next: Record<string, string> = "replace" in change ? { ...change.replace } : { ...current };
  if ("patch" in change) {
    for (const [k, v] of Object.entries(change.patch)) {
      if (v === null) delete next[k];
      else next[k] = v;
    }
  }
  validateEnv(next);
  await deps.store.put(await envItem(deps, actor.userId, appId, next));
  await recordAudit(deps, {
    userId: actor.userId,
    action: "app.env_update",
    resourceType: "app",
    resourceId: appId,
    details: { mode: "replace" in change ? "replace" : "patch", names: Object.keys(next) },
    ipAddress: actor.ip,
  });
  return next;
}
