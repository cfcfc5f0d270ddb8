import { readFileSync } from "node:fs";
import * as z from "zod/mini";
import { ConfigError } from "../errors.ts";
import "../zod-mini.ts";
import { DEFAULT_PLANS } from "./default-plans.ts";

/**
 * Plans are configuration, not code (issue: pay-per-use): limits on what a
 * user may hold and use, and unit prices in cents (fractions allowed). The
 * default set is default-plans.ts; `HOIST_PLANS_FILE` names another file
 * of the same shape. A missing limit is unlimited; a missing price is free.
 */
export const LIMITS = ["servers", "apps", "runningApps", "deployMinutes", "appMinutes", "requestsPerMinute"] as const;
export type Limit = (typeof LIMITS)[number];
/** Metered items, as `GET /api/usage` names them, each with a unit price. */
export const PRICED = ["requests", "deployments", "deploySeconds", "appRunningMinutes"] as const;
export type Priced = (typeof PRICED)[number];

export interface Plan {
  name: string;
  limits: Partial<Record<Limit, number>>;
  prices: Partial<Record<Priced, number>>;
}

export interface Plans {
  /** The plan new users get (and users with none recorded have). */
  default: string;
  byName: Record<string, Plan>;
  /** The named plan; the default for none (or one no longer configured). */
  get(name: string | null | undefined): Plan;
}

const NAME = /^[a-z][a-z0-9-]{0,31}$/;
const whole = z.int().check(z.minimum(0));
const cents = z.number().check(z.minimum(0), z.refine(Number.isFinite, "a finite number"));
const PlanSchema = z.strictObject({
  limits: z._default(z.strictObject(Object.fromEntries(LIMITS.map((l) => [l, z.optional(whole)]))), {}),
  prices: z._default(z.strictObject(Object.fromEntries(PRICED.map((p) => [p, z.optional(cents)]))), {}),
});
const PlansFile = z
  .strictObject({
    default: z.string().check(z.regex(NAME, "a plan name: lowercase letters, digits and '-'")),
    plans: z.record(z.string().check(z.regex(NAME, "a plan name: lowercase letters, digits and '-'")), PlanSchema),
  })
  .check(z.refine((f) => f.default in f.plans, { message: "must name one of the plans", path: ["default"] }));

/** Plans from JSON text; a ConfigError naming each bad field (`plans.free.limits.apps: …`). */
export function parsePlans(json: string, source: string): Plans {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new ConfigError(`${source}: not JSON (${(err as Error).message})`);
  }
  const parsed = PlansFile.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.map(String).join(".") || "(top)"}: ${i.message}`);
    throw new ConfigError(`${source}: invalid plans\n  ${lines.join("\n  ")}`);
  }
  const file = parsed.data;
  const byName = Object.fromEntries(
    Object.entries(file.plans).map(([name, p]) => [
      name,
      { name, limits: p.limits as Plan["limits"], prices: p.prices as Plan["prices"] },
    ]),
  );
  const fallback = byName[file.default] as Plan;
  return { default: file.default, byName, get: (name) => (name ? byName[name] : undefined) ?? fallback };
}

/** The plans of `file` (HOIST_PLANS_FILE), or the default set. */
export function loadPlans(file: string | undefined): Plans {
  if (!file) return parsePlans(JSON.stringify(DEFAULT_PLANS), "default plans");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(`HOIST_PLANS_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
  return parsePlans(text, `HOIST_PLANS_FILE ${file}`);
}
