import type { Context } from "hono";

const methods = ["GET", "POST", "PUT", "PATCH", "DELETE"] as const;

/**
 * For a request no route matched: the methods that other routes accept on the
 * same path (for a 405 with `Allow`), or none (a plain 404).
 */
export function allowedMethods(routes: { method: string; path: string }[]): (c: Context) => string[] {
  const compiled = routes
    .filter((r) => (methods as readonly string[]).includes(r.method))
    .map((r) => ({
      method: r.method,
      pattern: new RegExp(`^${r.path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/\/:[^/]+/g, "/[^/]+")}/?$`),
    }));
  return (c) => {
    const path = c.req.path;
    return [...new Set(compiled.filter((r) => r.pattern.test(path)).map((r) => r.method))];
  };
}
