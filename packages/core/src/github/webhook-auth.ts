import { verify } from "@octokit/webhooks-methods";
import { HoistError } from "../errors.ts";
import type { Deps } from "../ports.ts";
import type { Key } from "../store/store.ts";
import {
  type AppHookItem,
  appHookContext,
  appHookKey,
  type RepoSecretItem,
  repoSecretContext,
  repoSecretKey,
} from "./repo-entity.ts";

/** Constant-time check of `X-Hub-Signature-256` (`sha256=<hex HMAC of the body>`). */
export async function verifySignature(secret: string, body: string, signature: string): Promise<boolean> {
  try {
    return await verify(secret, body, signature);
  } catch {
    // An empty body or signature: nothing GitHub would send.
    return false;
  }
}

const invalidSignature = (detail: string) => new HoistError(401, "invalid_signature", detail);

/**
 * Who vouches for a delivery, which decides the apps it may reach:
 * - `repository`: signed with the secret of the repository it names: apps bound to that repository's id;
 * - `global`: signed with the operator's HOIST_GITHUB_WEBHOOK_SECRET, trusted for every repository: apps
 *   bound by id, and those admins bound by name;
 * - `app`: signed with one app's own hook secret, at that app's hook URL: that app alone.
 */
export type DeliveryScope =
  | { kind: "repository"; repoId: number }
  | { kind: "global" }
  | { kind: "app"; ownerId: string; appId: string };

/** The stored secret a delivery may be signed with: its app's own hook's, or the named repository's. */
export type SecretRef = { kind: "app"; appId: string; key: Key } | { kind: "repository"; repoId: number; key: Key };

/** Which secret to read for a delivery (at an app's hook URL, that app's; else the payload's repository's, if any). */
export function secretRef(appId: string | undefined, payload: unknown): SecretRef | null {
  if (appId) return { kind: "app", appId, key: appHookKey(appId) };
  const repoId = (payload as { repository?: { id?: unknown } } | undefined)?.repository?.id;
  if (typeof repoId === "number" && Number.isSafeInteger(repoId))
    return { kind: "repository", repoId, key: repoSecretKey(repoId) };
  return null;
}

/**
 * Verifies the signature with the secret `ref` names (`item`: as read, with
 * the delivery's other reads), or with the operator's global secret. At an
 * app's own hook URL only that app's secret counts. 401 otherwise.
 */
export async function authenticate(
  deps: Pick<Deps, "config" | "keyVault">,
  req: { body: string; signature: string | undefined },
  ref: SecretRef | null,
  item: AppHookItem | RepoSecretItem | undefined,
): Promise<DeliveryScope> {
  const signature = req.signature;
  if (!signature) throw invalidSignature("Missing X-Hub-Signature-256 header");
  const mismatch = () => invalidSignature("X-Hub-Signature-256 does not match the body");
  if (ref?.kind === "app") {
    const hook = item?.entity === "app-hook" ? item : undefined;
    if (!hook) throw mismatch();
    const secret = await deps.keyVault.decrypt(hook.secret, appHookContext(ref.appId));
    if (!(await verifySignature(secret, req.body, signature))) throw mismatch();
    return { kind: "app", ownerId: hook.ownerId, appId: hook.appId };
  }
  if (ref?.kind === "repository" && item?.entity === "repo-secret") {
    const secret = await deps.keyVault.decrypt(item.secret, repoSecretContext(ref.repoId));
    if (await verifySignature(secret, req.body, signature)) return { kind: "repository", repoId: ref.repoId };
  }
  const global = deps.config.github.webhookSecret;
  if (global && (await verifySignature(global, req.body, signature))) return { kind: "global" };
  throw mismatch();
}
