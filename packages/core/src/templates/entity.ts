import type { Key } from "../store/store.ts";
import type { Template, TemplateFile, TemplateSummary } from "./schemas.ts";

/**
 * Admins' templates, in the single table; the built-ins live in code
 * (builtin.ts). Each template is two items, so listing never reads the files:
 * - `TEMPLATES` / `TEMPLATE#<id>`: the summary (what `GET /api/templates` lists);
 * - `TEMPLATE#<id>` / `FILES`: the files' content (up to 128 KiB, well under an item's 400 KB).
 * `TEMPLATES` / `COUNT` counts them, so their number is bounded under races.
 */

export const MAX_ADMIN_TEMPLATES = 100;

export type TemplateItem = Key & {
  entity: "template";
  version: 1;
  createdBy: string;
} & Omit<TemplateSummary, "builtin" | "createdAt"> & { createdAt: number };

export type TemplateFilesItem = Key & { entity: "template-files"; version: 1; id: string; files: TemplateFile[] };

export const templateKeys = {
  summary: (id: string): Key => ({ pk: "TEMPLATES", sk: `TEMPLATE#${id}` }),
  files: (id: string): Key => ({ pk: `TEMPLATE#${id}`, sk: "FILES" }),
  count: (): Key => ({ pk: "TEMPLATES", sk: "COUNT" }),
};

/** Named access pattern: every admin template's summary (one partition, bounded by {@link MAX_ADMIN_TEMPLATES}). */
export const templateQueries = {
  all: () => ({ pk: "TEMPLATES", sk: { beginsWith: "TEMPLATE#" } }),
};

export function toTemplate(item: TemplateItem, files: TemplateFilesItem): Template {
  return { ...toSummary(item), files: files.files };
}

export function toSummary(item: TemplateItem): TemplateSummary {
  return {
    id: item.id,
    name: item.name,
    description: item.description,
    builtin: false,
    files: item.files,
    env: item.env,
    secretEnv: item.secretEnv,
    commands: item.commands,
    createdAt: item.createdAt,
  };
}
