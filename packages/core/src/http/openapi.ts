import { z } from "@hono/zod-openapi";

/** Small builders so route definitions stay short and every error response is documented the same way. */
export const ProblemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string().optional(),
    requestId: z.string().optional(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    limit: z.string().optional().openapi({ description: "402: the plan limit that would be exceeded" }),
    use: z.number().optional().openapi({ description: "402: the current use of that limit" }),
    allowed: z.number().optional().openapi({ description: "402: what the plan allows" }),
    plan: z.string().optional().openapi({ description: "402: the user's plan" }),
  })
  .openapi("Problem");

const descriptions: Record<number, string> = {
  400: "Invalid input",
  401: "Not authenticated",
  402: "A limit of your plan would be exceeded",
  403: "Not allowed",
  404: "Not found",
  409: "Conflict",
  413: "Body too large",
  415: "Not JSON",
  423: "Locked",
  429: "Rate limited",
  502: "An upstream (GitHub, your server) failed",
  503: "Not configured or unavailable",
};

export function problems(...statuses: number[]) {
  return Object.fromEntries(
    statuses.map((s) => [
      s,
      { description: descriptions[s] ?? "Error", content: { "application/problem+json": { schema: ProblemSchema } } },
    ]),
  );
}

export const jsonContent = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

export const jsonBody = <T extends z.ZodType>(schema: T) => ({
  required: true,
  content: { "application/json": { schema } },
});

export const bearer = [{ bearer: [] }];
/** Public operations say so explicitly: no credentials. */
export const noAuth: { [scheme: string]: string[] }[] = [];
/** GitHub's deliveries are authenticated by `X-Hub-Signature-256`, not by a bearer token. */
export const githubSignature = [{ githubSignature: [] }];

export const PageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().min(1).max(2048).optional(),
});

export const pageOf = <T extends z.ZodType>(item: T) =>
  z.object({ items: z.array(item), nextCursor: z.string().nullable() });

/** A PUT/PATCH body: any of `fields`, nothing else, and at least one of them. */
export const changesOf = <T extends z.ZodRawShape>(fields: T) =>
  z
    .object(fields)
    .partial()
    .strict()
    .refine((b) => Object.keys(b).length > 0, { message: "Nothing to change" });
