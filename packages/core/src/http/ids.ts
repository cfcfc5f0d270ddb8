import { z } from "@hono/zod-openapi";
import type { IdPrefix } from "../ids.ts";

/**
 * An id of one kind, as Hoist issues them: its prefix and URL-safe
 * characters only. Ids become parts of table keys, so anything else (a `#`
 * that would reach another item, another kind's prefix) is refused at the
 * edge as a 400 naming the field.
 */
export const idOf = (prefix: IdPrefix) =>
  z
    .string()
    .regex(new RegExp(`^${prefix}_[A-Za-z0-9_-]{1,64}$`), `a ${prefix}_… id`)
    .openapi({ example: `${prefix}_4VdXb1m9Qj2T0cZ8sK3wLg` });

/** `{id}` in a path, of one kind. */
export const idParam = (prefix: IdPrefix) => z.object({ id: idOf(prefix) });
