import type { Actor } from "../actor.ts";
import { auditItem } from "../audit/service.ts";
import { ConditionFailedError, ConflictError, NotFoundError } from "../errors.ts";
import type { Deps } from "../ports.ts";
import { cond, queryAll } from "../store/store.ts";
import { BUILTIN_TEMPLATES, builtinTemplate } from "./builtin.ts";
import {
  MAX_ADMIN_TEMPLATES,
  type TemplateFilesItem,
  type TemplateItem,
  templateKeys,
  templateQueries,
  toSummary,
  toTemplate,
} from "./entity.ts";
import { summaryOf, type Template, type TemplateInput, type TemplateSummary } from "./schemas.ts";

/** Built-ins first, then admins' templates by id. */
export async function listTemplates(deps: Pick<Deps, "store">): Promise<TemplateSummary[]> {
  const items = await queryAll<TemplateItem>(deps.store, templateQueries.all());
  return [...BUILTIN_TEMPLATES.map(summaryOf), ...items.map(toSummary)];
}

/** The template with its files, or undefined. */
export async function findTemplate(deps: Pick<Deps, "store">, id: string): Promise<Template | undefined> {
  const builtin = builtinTemplate(id);
  if (builtin) return builtin;
  const [item, files] = await deps.store.batchGet([templateKeys.summary(id), templateKeys.files(id)]);
  if (!item || !files) return undefined;
  return toTemplate(item as TemplateItem, files as TemplateFilesItem);
}

export async function getTemplate(deps: Pick<Deps, "store">, id: string): Promise<Template> {
  const template = await findTemplate(deps, id);
  if (!template) throw new NotFoundError("Template");
  return template;
}

/**
 * An admin's template: its summary, its files and the count in one
 * transaction, with the audit entry. Ids are unique across built-ins and
 * admins' templates (409).
 */
export async function createTemplate(deps: Pick<Deps, "store">, actor: Actor, input: TemplateInput) {
  if (builtinTemplate(input.id)) throw new ConflictError(`"${input.id}" is a built-in template`);
  const now = Date.now();
  const template: Template = {
    id: input.id,
    name: input.name,
    description: input.description,
    builtin: false,
    files: input.files,
    env: input.env,
    secretEnv: input.secretEnv,
    commands: input.commands && Object.keys(input.commands).length > 0 ? input.commands : null,
    createdAt: now,
  };
  const { builtin: _builtin, ...summary } = summaryOf(template);
  const item: TemplateItem = {
    ...templateKeys.summary(input.id),
    entity: "template",
    version: 1,
    ...summary,
    createdAt: now,
    createdBy: actor.userId,
  };
  const files: TemplateFilesItem = {
    ...templateKeys.files(input.id),
    entity: "template-files",
    version: 1,
    id: input.id,
    files: input.files,
  };
  try {
    await deps.store.transact([
      { put: item, condition: cond.notExists() },
      { put: files },
      {
        update: {
          ...templateKeys.count(),
          set: { entity: "template-count" },
          add: { templates: 1 },
          condition: cond.or(cond.attrNotExists("templates"), cond.compare("templates", "<", MAX_ADMIN_TEMPLATES)),
        },
      },
      {
        put: auditItem(
          {
            userId: actor.userId,
            action: "template.create",
            resourceType: "template",
            resourceId: input.id,
            details: { name: input.name, files: input.files.map((f) => f.path), env: Object.keys(input.env) },
            ipAddress: actor.ip,
          },
          now,
        ),
      },
    ]);
  } catch (err) {
    if (!(err instanceof ConditionFailedError)) throw err;
    if (err.failedIndexes.includes(2))
      throw new ConflictError(`There are already ${MAX_ADMIN_TEMPLATES} templates; delete one first`);
    throw new ConflictError(`A template "${input.id}" already exists`);
  }
  return template;
}

export async function deleteTemplate(deps: Pick<Deps, "store">, actor: Actor, id: string): Promise<void> {
  if (builtinTemplate(id)) throw new ConflictError(`"${id}" is a built-in template and cannot be deleted`);
  try {
    await deps.store.transact([
      { delete: templateKeys.summary(id), condition: cond.exists() },
      { delete: templateKeys.files(id) },
      { update: { ...templateKeys.count(), add: { templates: -1 }, condition: cond.attrExists("templates") } },
      {
        put: auditItem({
          userId: actor.userId,
          action: "template.delete",
          resourceType: "template",
          resourceId: id,
          ipAddress: actor.ip,
        }),
      },
    ]);
  } catch (err) {
    if (err instanceof ConditionFailedError) throw new NotFoundError("Template");
    throw err;
  }
}
