import { fileURLToPath } from "node:url";

/**
 * HOIST_PLANS_FILE for tests: the default plan's name and prices, no limits.
 * Most tests hold several servers and apps per user and are about something
 * else; testDeps and the runtimes tests start use it unless a test gives its
 * own (plans/limits.test.ts does).
 */
export const UNLIMITED_PLANS_FILE = fileURLToPath(new URL("./unlimited-plans.json", import.meta.url));
