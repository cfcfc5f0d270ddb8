import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { type FieldError, HoistError, ValidationError } from "../errors.ts";
import type { AppEnv } from "./env.ts";

/** RFC 9457 problem details, the one error shape of the API. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  requestId?: string;
  errors?: FieldError[];
}

const titles: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  402: "Payment Required",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  423: "Locked",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
};

export function problem(
  c: Context<AppEnv>,
  status: number,
  detail: string,
  extra: {
    code?: string;
    errors?: FieldError[];
    headers?: Record<string, string>;
    /** Extension members of the problem (RFC 9457 § 3.2), e.g. a 402's limit, use and plan. */
    members?: Record<string, unknown>;
  } = {},
): Response {
  const body: Problem = {
    type: extra.code ? `https://hoist.dev/problems/${extra.code}` : "about:blank",
    title: titles[status] ?? "Error",
    status,
    detail,
    instance: c.req.path,
    requestId: c.get("requestId"),
    ...(extra.errors ? { errors: extra.errors } : {}),
    ...extra.members,
  };
  for (const [name, value] of Object.entries(extra.headers ?? {})) c.header(name, value);
  return c.body(JSON.stringify(body), status as ContentfulStatusCode, {
    "Content-Type": "application/problem+json",
  });
}

/** `app.onError`: the only place errors become responses. Unknown errors are logged and answered 500 without details. */
export function onError(err: Error, c: Context<AppEnv>): Response {
  if (err instanceof HoistError) return problem(c, err.status, err.message, { code: err.code, ...err.extra });
  if (err instanceof HTTPException) {
    // Hono's own validators and middleware: malformed JSON is a 400 like any other bad input.
    const status = err.status;
    const detail = status === 400 && /JSON/i.test(err.message) ? "Malformed JSON in request body" : err.message;
    return problem(c, status, detail || titles[status] || "Error", { code: status === 400 ? "validation" : undefined });
  }
  c.var.logger.error("unhandled error", { path: c.req.path, error: err });
  return problem(c, 500, "Something went wrong on our side; the request id identifies it in our logs", {
    code: "internal",
  });
}

/** zod-openapi's default hook: a failed schema becomes a 400 naming every bad field. */
export function validationHook(
  result: { success: boolean; target: string; error?: { issues: { path: PropertyKey[]; message: string }[] } },
  _c: Context,
): void {
  if (result.success || !result.error) return;
  throw new ValidationError(
    `Invalid ${result.target === "json" ? "request body" : result.target}`,
    result.error.issues.map((i) => ({
      path: [result.target === "json" ? "body" : result.target, ...i.path.map(String)].join("."),
      message: i.message,
    })),
  );
}
