import { z } from "@hono/zod-openapi";
import { pathSetProblem, relativePathProblem } from "../servers/remote-files.ts";

/**
 * One schema per shape: a template as admins send it, as stored and as
 * answered. Built-ins (builtin.ts) are written in the same shape.
 */

export const TEMPLATE_LIMITS = { files: 64, totalBytes: 128 * 1024, envCount: 50, secretEnv: 20 };

export const TemplateId = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,47}$/, "lowercase letters, digits and -, up to 48, starting with a letter or digit")
  .openapi({ example: "node" });

const EnvName = z
  .string()
  .max(128)
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "letters, digits and _ (not first)");
const EnvValue = z
  .string()
  .max(32 * 1024)
  .refine((v) => !v.includes("\0"), "no NUL");
const Command = z.string().trim().min(1).max(4096);

const FilePath = z.string().superRefine((path, ctx) => {
  const problem = relativePathProblem(path);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
  // Hoist writes `.env` in cdPath from the app's variables at every start: a template's would be lost.
  else if (path === ".env") ctx.addIssue({ code: "custom", message: "put variables in env, not a .env file" });
});

export const TemplateFileSchema = z
  .object({
    path: FilePath.openapi({ description: "Relative to the app's cdPath, `/`-separated; no `..`" }),
    content: z.string().openapi({ description: "The file's content: text, or base64 with `encoding: base64`" }),
    encoding: z.enum(["utf8", "base64"]).default("utf8"),
    mode: z
      .string()
      .regex(/^0?[0-7]{3}$/, "octal permission bits such as 0644 or 0755")
      .optional()
      .openapi({ description: "Permission bits (octal); absent: the server's default" }),
  })
  .strict()
  .superRefine((f, ctx) => {
    if (f.encoding === "base64" && !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(f.content))
      ctx.addIssue({ code: "custom", path: ["content"], message: "not base64" });
  })
  .openapi("TemplateFile");
export type TemplateFile = z.output<typeof TemplateFileSchema>;

const CommandsSchema = z.object({ start: Command, stop: Command, deploy: Command }).partial();

export const TemplateInputSchema = z
  .object({
    id: TemplateId,
    name: z.string().trim().min(1).max(100),
    description: z.string().trim().max(1000).default(""),
    files: z.array(TemplateFileSchema).min(1).max(TEMPLATE_LIMITS.files),
    env: z
      .record(EnvName, EnvValue)
      .default({})
      .openapi({ description: "Default environment variables of apps made from it" }),
    secretEnv: z
      .array(EnvName)
      .max(TEMPLATE_LIMITS.secretEnv)
      .default([])
      .openapi({ description: "Variables set to a fresh random value (32 URL-safe characters) for each app" }),
    commands: CommandsSchema.optional().openapi({ description: "The apps' commands (others: Hoist's defaults)" }),
  })
  .strict()
  .superRefine((t, ctx) => {
    const paths = t.files.map((f) => f.path);
    const problem = pathSetProblem(paths);
    if (problem) ctx.addIssue({ code: "custom", path: ["files"], message: problem });
    const total = t.files.reduce((n, f) => n + contentBytes(f).length, 0);
    if (total > TEMPLATE_LIMITS.totalBytes)
      ctx.addIssue({
        code: "custom",
        path: ["files"],
        message: `Files together exceed ${TEMPLATE_LIMITS.totalBytes} bytes (${total})`,
      });
    const names = new Set([...Object.keys(t.env), ...t.secretEnv]);
    if (names.size > TEMPLATE_LIMITS.envCount)
      ctx.addIssue({ code: "custom", path: ["env"], message: `At most ${TEMPLATE_LIMITS.envCount} variables` });
    if (new Set(t.secretEnv).size !== t.secretEnv.length)
      ctx.addIssue({ code: "custom", path: ["secretEnv"], message: "A name appears twice" });
  })
  .openapi("TemplateInput");
export type TemplateInput = z.output<typeof TemplateInputSchema>;

/** A template as answered, its files with their content. */
export const TemplateSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    description: z.string(),
    builtin: z.boolean().openapi({ description: "Shipped with Hoist (cannot be changed or deleted)" }),
    files: z.array(TemplateFileSchema),
    env: z.record(z.string(), z.string()),
    secretEnv: z.array(z.string()),
    commands: CommandsSchema.nullable(),
    createdAt: z.number().int().nullable().openapi({ description: "null for built-ins" }),
  })
  .openapi("Template");
export type Template = z.output<typeof TemplateSchema>;

/** In lists: the files' paths, sizes and modes, without their content. */
export const TemplateSummarySchema = TemplateSchema.extend({
  files: z.array(z.object({ path: z.string(), size: z.number().int(), mode: z.string().optional() })),
}).openapi("TemplateSummary");
export type TemplateSummary = z.output<typeof TemplateSummarySchema>;

/** A file's exact bytes. */
export const contentBytes = (f: Pick<TemplateFile, "content" | "encoding">): Buffer =>
  Buffer.from(f.content, f.encoding === "base64" ? "base64" : "utf8");

export function summaryOf(t: Template): TemplateSummary {
  return {
    ...t,
    files: t.files.map((f) => ({ path: f.path, size: contentBytes(f).length, ...(f.mode ? { mode: f.mode } : {}) })),
  };
}
