import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { PageQuery } from "./openapi.ts";

/** Seed 004's dashboard lists servers, projects and apps as bare arrays with `?format=array`. */
export const OwnedListQuery = PageQuery.extend({ format: z.enum(["page", "array"]).default("page") });

/** Pages normally; with `format=array`, reads every page and answers the bare array. */
export async function listResponse<T>(
  c: Context,
  format: "page" | "array",
  read: (cursor: string | undefined, limit: number) => Promise<{ items: T[]; nextCursor: string | null }>,
  query: { limit: number; cursor?: string },
) {
  if (format === "page") return c.json(await read(query.cursor, query.limit), 200);
  const all: T[] = [];
  let cursor: string | undefined;
  do {
    const page = await read(cursor, 100);
    all.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor && all.length < 10_000);
  return c.json(all, 200);
}
