import { randomBytes } from "node:crypto";
import type { Actor } from "../actor.ts";
import { getAppItem } from "../apps/service.ts";
import { auditAction } from "../audit/service.ts";
import type { Deps } from "../ports.ts";
import { type AppHookItem, appHookContext, appHookKey } from "./repo-entity.ts";

/**
 * Gives an app its own GitHub hook: a URL only its deliveries use and a fresh
 * random secret, shown this once (stored sealed). Calling again rotates: the
 * old secret stops working at once. For setups without GitHub sign-in — adding
 * a webhook on GitHub needs admin rights on the repository, which is the proof.
 */
export async function createAppHook(deps: Deps, actor: Actor, appId: string, origin: string) {
  const app = await getAppItem(deps, actor.userId, appId);
  const secret = randomBytes(32).toString("base64url");
  const item: AppHookItem = {
    ...appHookKey(app.id),
    entity: "app-hook",
    appId: app.id,
    ownerId: app.ownerId,
    secret: await deps.keyVault.encrypt(secret, appHookContext(app.id)),
    createdAt: Date.now(),
  };
  await deps.store.put(item);
  await auditAction(deps, actor, "app", "app.webhook_rotate", app.id, {});
  const base = (deps.config.publicUrl ?? origin).replace(/\/+$/, "");
  return { url: `${base}/api/webhooks/github/apps/${app.id}`, secret };
}
