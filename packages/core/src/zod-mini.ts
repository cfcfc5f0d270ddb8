import { config } from "zod/mini";
import { globalConfig } from "zod/v4/core";
import en from "zod/v4/locales/en.js";

/**
 * zod/mini sets no error messages of its own, where classic zod sets
 * English on its first schema: set it the same way (only if nothing is set
 * yet), so a schema reports the same messages whichever zod built it.
 * Imported by each module that builds zod/mini schemas. Named imports, not
 * `z.core`: that namespace would keep all of zod's core (its JSON Schema
 * generator too) in every bundle.
 */
if (!globalConfig.localeError) config(en());
