import { randomBytes } from "node:crypto";
import type { Actor } from "../actor.ts";
import { type AppInput, createApp } from "../apps/service.ts";
import { ConflictError, PaymentRequiredError, ServiceUnavailableError, ValidationError } from "../errors.ts";
import { type CountsItem, countsKey } from "../plans/entity.ts";
import { planOf } from "../plans/quota.ts";
import type { Deps } from "../ports.ts";
import { projectKey } from "../projects/entity.ts";
import { type ServerItem, serverKey } from "../servers/entity.ts";
import type { RemoteFile } from "../servers/remote-files.ts";
import { SshError } from "../servers/ssh-error.ts";
import { pinHostKey, targetFor } from "../servers/status.ts";
import { contentBytes, type Template } from "./schemas.ts";
import { findTemplate } from "./service.ts";

export type TemplatedAppInput = AppInput & { templateId: string; force?: boolean };

/**
 * `POST /api/apps {templateId, …}`: checks everything that can be checked
 * before touching the server (the template, the project and server, the
 * plan's app limit), writes the template's files into `cdPath` over SFTP
 * (409 naming the files that exist, unless `force`), then creates the app
 * with the template's commands and default env (its `secretEnv` freshly
 * generated) in one transaction. The app's creation may still fail after the files were
 * written (a racing create takes the last app of the plan): the files stay,
 * and a retry needs `force`.
 */
export async function createAppFromTemplate(deps: Deps, actor: Actor, input: TemplatedAppInput) {
  const { templateId, force, ...app } = input;
  const template = await findTemplate(deps, templateId);
  if (!template)
    throw new ValidationError("No such template", [
      { path: "body.templateId", message: `No template "${templateId}"; GET /api/templates lists them` },
    ]);
  const server = await checkBeforeWriting(deps, actor, app);
  const writeFiles = deps.executor.writeFiles?.bind(deps.executor);
  if (!writeFiles) throw new ServiceUnavailableError("This Hoist cannot write files to servers (no SFTP executor)");
  const target = await targetFor(deps, server);
  let result: Awaited<ReturnType<typeof writeFiles>>;
  try {
    result = await writeFiles(target, app.cdPath, remoteFiles(template), {
      force,
      timeoutMs: deps.config.ssh.statusTimeoutMs,
      connectTimeoutMs: deps.config.ssh.connectTimeoutMs,
    });
  } catch (err) {
    if (err instanceof SshError && err.kind === "host-key")
      throw new ConflictError(
        `${err.message}. If the server was rebuilt, re-pin with PUT {"hostKeyFingerprint": null}`,
      );
    throw err;
  }
  await pinHostKey(deps, server, result.hostKeyFingerprint);
  const commands = app.commands === null ? null : { ...template.commands, ...app.commands };
  return createApp(
    deps,
    actor,
    { ...app, commands: commands && Object.keys(commands).length > 0 ? commands : null },
    { templateId: template.id, overwritten: result.overwritten, env: defaultEnv(template) },
  );
}

/** The project and server must be the caller's, and the plan must allow one more app: else nothing is written. */
async function checkBeforeWriting(deps: Deps, actor: Actor, app: AppInput): Promise<ServerItem> {
  const [project, server, counts] = await deps.store.batchGet([
    projectKey(actor.userId, app.projectId),
    serverKey(actor.userId, app.serverId),
    countsKey(actor.userId),
  ]);
  const errors = [
    ...(project ? [] : [{ path: "body.projectId", message: "No such project" }]),
    ...(server ? [] : [{ path: "body.serverId", message: "No such server" }]),
  ];
  if (errors.length > 0) throw new ValidationError("The app refers to something that does not exist", errors);
  const plan = await planOf(deps, actor.userId, actor);
  const use = (counts as CountsItem | undefined)?.apps;
  const limit = plan.limits.apps;
  if (use !== undefined && limit !== undefined && use >= limit)
    throw new PaymentRequiredError("apps", use, limit, plan.name);
  return server as ServerItem;
}

function remoteFiles(template: Template): RemoteFile[] {
  return template.files.map((f) => ({
    path: f.path,
    content: contentBytes(f),
    ...(f.mode ? { mode: Number.parseInt(f.mode, 8) } : {}),
  }));
}

/** The template's env, each of its `secretEnv` a new random value (32 URL-safe characters). */
function defaultEnv(template: Template): Record<string, string> {
  const env = { ...template.env };
  for (const name of template.secretEnv) env[name] = randomBytes(24).toString("base64url");
  return env;
}
