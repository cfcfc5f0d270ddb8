import { z } from "@hono/zod-openapi";

export const UserSchema = z
  .object({
    id: z.string(),
    username: z.string(),
    email: z.string(),
    role: z.enum(["admin", "member"]),
    disabled: z.boolean(),
    githubConnected: z.boolean(),
    oidcConnected: z.boolean().openapi({ description: "An OpenID Connect identity is linked (HOIST_OIDC_ISSUER)" }),
    authType: z.enum(["password", "github", "oidc"]),
    plan: z.string().nullable().openapi({ description: "The user's plan (null: the operator's default plan)" }),
    createdAt: z.number().int(),
  })
  .openapi("User");

export const Username = z
  .string()
  .min(3)
  .max(39)
  .regex(
    /^[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?$/,
    "letters, digits, '.', '_' or '-', starting and ending with a letter or digit",
  );
export const Email = z.email().max(254);
/** Checked for strength by the password policy; the schema only bounds it. */
export const Password = z.string().min(1).max(1024);
