import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { actorOf } from "../actor.ts";
import { recordAudit } from "../audit/service.ts";
import { requireUser } from "../auth/middleware.ts";
import type { AppEnv } from "../http/env.ts";
import { idOf, idParam } from "../http/ids.ts";
import { listResponse, OwnedListQuery } from "../http/list.ts";
import { idempotent } from "../http/middleware/idempotency.ts";
import { bearer, changesOf, jsonBody, jsonContent, pageOf, problems } from "../http/openapi.ts";
import { validationHook } from "../http/problem.ts";
import { createAppFromTemplate } from "../templates/apply.ts";
import { TemplateId } from "../templates/schemas.ts";
import { toApp } from "./entity.ts";
import { masked, readEnv, writeEnv } from "./env.ts";
import { extendApp, startApp, stopApp } from "./lifecycle.ts";
import { createApp, deleteApp, getAppItem, listApps, updateApp } from "./service.ts";

const Command = z.string().trim().min(1).max(4096);
const RepositorySchema = z.object({
  /** Read-only: GitHub's repository id once the owner connected it (ignored on input). */
  id: z.number().int().nullable().optional(),
  fullName: z
    .string()
    .max(200)
    .regex(/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/, "owner/name"),
  branch: z
    .string()
    .min(1)
    .max(255)
    .regex(/^[^\s~^:?*[\\]+$/, "a Git branch name"),
  autoDeploy: z.boolean().default(true),
  deployOn: z.enum(["push", "ci-success"]).default("push"),
  /** With `deployOn: ci-success`: the workflows (by name) that must all succeed for a commit before it deploys. */
  workflows: z.array(z.string().trim().min(1).max(200)).min(1).max(20).optional(),
});
const CommandsSchema = z.object({ start: Command, stop: Command, deploy: Command }).partial();

const AppSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    projectId: z.string(),
    serverId: z.string(),
    cdPath: z.string(),
    appUrl: z.string().nullable(),
    autoStopTimeout: z.number().int(),
    status: z.enum(["stopped", "starting", "running", "stopping", "error"]),
    startedAt: z.number().int().nullable(),
    stopsAt: z.number().int().nullable(),
    lastError: z
      .object({
        message: z.string(),
        exitCode: z.number().int().nullable(),
        output: z.array(z.string()),
        at: z.number().int(),
      })
      .nullable(),
    repository: RepositorySchema.nullable(),
    commands: CommandsSchema.nullable(),
    createdAt: z.number().int(),
    updatedAt: z.number().int(),
  })
  .openapi("App");

const fields = {
  name: z.string().trim().min(1).max(100),
  projectId: idOf("prj"),
  serverId: idOf("srv"),
  cdPath: z
    .string()
    .min(1)
    .max(1024)
    .refine((p) => p.startsWith("/") || p === "~" || p.startsWith("~/"), "an absolute path or one under ~/")
    .refine((p) => !p.includes("\0") && !p.includes("\n"), "no NUL or newline"),
  appUrl: z
    .url({ protocol: /^https?$/ })
    .max(2048)
    .nullable(),
  autoStopTimeout: z
    .number()
    .int()
    .min(0)
    .max(7 * 24 * 60),
  repository: RepositorySchema.nullable(),
  commands: CommandsSchema.nullable(),
};

/** `POST /api/apps` only: start from a template (GET /api/templates). */
const fromTemplate = {
  templateId: TemplateId.optional().openapi({
    description: "Write this template's files into cdPath (over SFTP) and start with its env and commands",
  }),
  force: z.boolean().optional().openapi({ description: "With templateId: overwrite files that exist in cdPath" }),
};

const Lifecycle = z.object({
  success: z.boolean(),
  appId: z.string(),
  status: AppSchema.shape.status,
  startedAt: z.number().int().nullable(),
  stopsAt: z.number().int().nullable(),
  message: z.string(),
});
const EnvValues = z.record(z.string(), z.string());
const IdParam = idParam("app");
const auth = { security: bearer, middleware: [requireUser], tags: ["apps"] };
const triggering = { ...auth, middleware: [requireUser, idempotent] };
const optionalBody = <T extends z.ZodType>(schema: T) => ({
  required: false,
  content: { "application/json": { schema } },
});

export const appRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      ...auth,
      method: "get",
      path: "/api/apps",
      summary: "Your apps (`?format=array` for a bare array)",
      request: {
        query: OwnedListQuery.extend({ projectId: idOf("prj").optional(), status: AppSchema.shape.status.optional() }),
      },
      responses: { 200: jsonContent(z.union([pageOf(AppSchema), z.array(AppSchema)]), "Apps"), ...problems(400, 401) },
    }),
    async (c) => {
      const q = c.req.valid("query");
      return listResponse(c, q.format, (cursor, limit) => listApps(c.var.deps, c.var.user.id, cursor, limit, q), q);
    },
  )
  .openapi(
    createRoute({
      ...auth,
      method: "post",
      path: "/api/apps",
      summary:
        "Create an app (a Compose project in a directory on one of your servers); with `templateId`, " +
        "the template's files are written into cdPath over SFTP first (409 naming existing ones unless `force`)",
      request: {
        body: jsonBody(
          z
            .object({ ...fields, ...fromTemplate })
            .partial({ appUrl: true, autoStopTimeout: true, repository: true, commands: true })
            .strict()
            .refine((b) => b.force === undefined || b.templateId !== undefined, {
              message: "force applies only with templateId",
              path: ["force"],
            }),
        ),
      },
      responses: {
        201: jsonContent(AppSchema, "Created"),
        ...problems(400, 401, 402, 403, 409, 502, 503, 504),
      },
    }),
    async (c) => {
      const { templateId, force, ...input } = c.req.valid("json");
      const app = templateId
        ? await createAppFromTemplate(c.var.deps, actorOf(c), { ...input, templateId, force })
        : await createApp(c.var.deps, actorOf(c), input);
      return c.json(app, 201);
    },
  )
  .openapi(
    createRoute({
      ...auth,
      method: "get",
      path: "/api/apps/{id}",
      summary: "One app",
      request: { params: IdParam },
      responses: { 200: jsonContent(AppSchema, "The app"), ...problems(401, 404) },
    }),
    async (c) => c.json(toApp(await getAppItem(c.var.deps, c.var.user.id, c.req.valid("param").id)), 200),
  )
  .openapi(
    createRoute({
      ...auth,
      method: "put",
      path: "/api/apps/{id}",
      summary: "Change an app",
      request: {
        params: IdParam,
        body: jsonBody(changesOf(fields)),
      },
      responses: { 200: jsonContent(AppSchema, "Updated"), ...problems(400, 401, 404, 409) },
    }),
    async (c) => c.json(await updateApp(c.var.deps, actorOf(c), c.req.valid("param").id, c.req.valid("json")), 200),
  )
  .openapi(
    createRoute({
      ...auth,
      method: "delete",
      path: "/api/apps/{id}",
      summary: "Delete a stopped app",
      request: { params: IdParam },
      responses: { 200: jsonContent(z.object({ success: z.literal(true) }), "Deleted"), ...problems(401, 404, 409) },
    }),
    async (c) => {
      await deleteApp(c.var.deps, actorOf(c), c.req.valid("param").id);
      return c.json({ success: true as const }, 200);
    },
  )
  .openapi(
    createRoute({
      ...triggering,
      method: "post",
      path: "/api/apps/{id}/start",
      summary: "Start the app (its start command in cdPath, .env written first); auto-stops after `timeout` minutes",
      request: {
        params: IdParam,
        body: optionalBody(
          z
            .object({
              // Minutes, fractions allowed; 0 = no auto-stop; absent = the app's autoStopTimeout.
              timeout: z
                .number()
                .min(0)
                .max(7 * 24 * 60)
                .optional(),
            })
            .strict(),
        ),
      },
      // 402: the plan's runningApps are all running, or this month's appMinutes are used up.
      responses: { 202: jsonContent(Lifecycle, "Starting"), ...problems(400, 401, 402, 404, 409) },
    }),
    async (c) => {
      const body = c.req.header("content-type") ? c.req.valid("json") : {};
      return c.json(await startApp(c.var.deps, actorOf(c), c.req.valid("param").id, body.timeout), 202);
    },
  )
  .openapi(
    createRoute({
      ...triggering,
      method: "post",
      path: "/api/apps/{id}/stop",
      summary: "Stop the app (its stop command) and cancel the auto-stop",
      request: { params: IdParam },
      responses: { 202: jsonContent(Lifecycle, "Stopping"), ...problems(401, 404, 409) },
    }),
    async (c) => c.json(await stopApp(c.var.deps, actorOf(c), c.req.valid("param").id), 202),
  )
  .openapi(
    createRoute({
      ...auth,
      method: "post",
      path: "/api/apps/{id}/extend",
      summary: "Move the auto-stop `minutes` later",
      request: {
        params: IdParam,
        body: jsonBody(
          z
            .object({
              minutes: z
                .number()
                .int()
                .min(1)
                .max(7 * 24 * 60),
            })
            .strict(),
        ),
      },
      responses: { 200: jsonContent(Lifecycle, "Extended"), ...problems(400, 401, 404, 409) },
    }),
    async (c) =>
      c.json(await extendApp(c.var.deps, actorOf(c), c.req.valid("param").id, c.req.valid("json").minutes), 200),
  )
  .openapi(
    createRoute({
      ...auth,
      method: "get",
      path: "/api/apps/{id}/env",
      summary: "Environment variable names, values masked (`?reveal=true` shows them)",
      request: { params: IdParam, query: z.object({ reveal: z.enum(["true", "false"]).default("false") }) },
      responses: { 200: jsonContent(EnvValues, "Variables"), ...problems(401, 404) },
    }),
    async (c) => {
      const app = await getAppItem(c.var.deps, c.var.user.id, c.req.valid("param").id);
      const env = await readEnv(c.var.deps, app.ownerId, app.id);
      if (c.req.valid("query").reveal !== "true") return c.json(masked(env), 200);
      await recordAudit(c.var.deps, {
        userId: app.ownerId,
        action: "app.env_reveal",
        resourceType: "app",
        resourceId: app.id,
        details: { names: Object.keys(env) },
        ipAddress: actorOf(c).ip,
      });
      return c.json(env, 200);
    },
  )
  .openapi(
    createRoute({
      ...auth,
      method: "put",
      path: "/api/apps/{id}/env",
      summary: "Replace all environment variables",
      request: { params: IdParam, body: jsonBody(EnvValues) },
      responses: { 200: jsonContent(EnvValues, "Variables (masked)"), ...problems(400, 401, 404) },
    }),
    async (c) => {
      const app = await getAppItem(c.var.deps, c.var.user.id, c.req.valid("param").id);
      return c.json(masked(await writeEnv(c.var.deps, actorOf(c), app.id, { replace: c.req.valid("json") })), 200);
    },
  )
  .openapi(
    createRoute({
      ...auth,
      method: "patch",
      path: "/api/apps/{id}/env",
      summary: "Upsert environment variables (`null` deletes one)",
      request: { params: IdParam, body: jsonBody(z.record(z.string(), z.string().nullable())) },
      responses: { 200: jsonContent(EnvValues, "Variables (masked)"), ...problems(400, 401, 404) },
    }),
    async (c) => {
      const app = await getAppItem(c.var.deps, c.var.user.id, c.req.valid("param").id);
      return c.json(masked(await writeEnv(c.var.deps, actorOf(c), app.id, { patch: c.req.valid("json") })), 200);
    },
  );
