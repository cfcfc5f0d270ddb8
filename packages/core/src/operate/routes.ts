import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { actorOf } from "../actor.ts";
import { requireUser } from "../auth/middleware.ts";
import type { AppEnv } from "../http/env.ts";
import { idParam } from "../http/ids.ts";
import { bearer, jsonBody, jsonContent, problems } from "../http/openapi.ts";
import { validationHook } from "../http/problem.ts";
import { readAppLogs } from "./app-logs.ts";
import { normalizeTime, timeOfMs } from "./compose-logs.ts";
import { execOnce, HTTP_EXEC_MAX_OUTPUT_BYTES, HTTP_EXEC_TIMEOUT_MS } from "./exec-once.ts";

const AppLogLineSchema = z
  .object({
    ts: z.number().int().openapi({ description: "Epoch ms" }),
    time: z.string().openapi({ description: "The exact time docker recorded (RFC 3339, UTC, nanoseconds)" }),
    service: z.string().openapi({ description: "The container, as compose names it (`web-1`)" }),
    line: z.string(),
  })
  .openapi("AppLogLine");

const LogsQuery = z.object({
  tail: z.coerce.number().int().min(1).max(5000).default(200).openapi({ description: "Last lines (1–5000)" }),
  since: z
    .string()
    .max(40)
    .refine((s) => /^\d{1,15}$/.test(s) || normalizeTime(s) !== undefined, "epoch ms, or an RFC 3339 time")
    .transform((s) => (/^\d{1,15}$/.test(s) ? timeOfMs(Number(s)) : (normalizeTime(s) as string)))
    .optional()
    .openapi({
      type: "string",
      description: "Lines from this time on: epoch ms, or an RFC 3339 time (a line's `time`, to the nanosecond)",
    }),
});

const ExecBody = z.object({ command: z.string().min(1).max(4096) }).strict();
const ExecResult = z
  .object({
    exitCode: z
      .number()
      .int()
      .nullable()
      .openapi({ description: "null when the command was stopped before it exited" }),
    output: z.string().openapi({ description: "stdout and stderr as they came, masked" }),
    truncated: z.boolean(),
    timedOut: z.boolean(),
  })
  .openapi("ExecResult");

const IdParam = idParam("app");
const auth = { security: bearer, middleware: [requireUser], tags: ["apps"] };

/** Operating a running app: its container logs and one-shot commands (API.md § Operating a running app). */
export const operateRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      ...auth,
      method: "get",
      path: "/api/apps/{id}/logs",
      summary: "The app's container logs (`docker compose logs`), masked; the channel `app-logs:<appId>` follows them",
      request: { params: IdParam, query: LogsQuery },
      responses: {
        200: jsonContent(
          z.object({
            items: z.array(AppLogLineSchema),
            truncated: z.boolean().openapi({ description: "Older lines were left out to keep the response small" }),
          }),
          "Lines, oldest first",
        ),
        ...problems(400, 401, 404, 502, 504),
      },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const result = await readAppLogs(c.var.deps, c.var.user.id, c.req.valid("param").id, q);
      return c.json(result, 200);
    },
  )
  .openapi(
    createRoute({
      ...auth,
      method: "post",
      path: "/api/apps/{id}/exec",
      summary: "Run a command in the app's directory with its environment (audited)",
      description:
        `Runs within the request: at most ${HTTP_EXEC_TIMEOUT_MS / 1000} s (API Gateway gives up at 29 s; ` +
        "HOIST_EXEC_TIMEOUT_SECONDS if shorter), then it is killed and `timedOut` is true. Output (stdout and " +
        `stderr, masked) is kept up to ${HTTP_EXEC_MAX_OUTPUT_BYTES / 1024} KiB; past that the command is stopped ` +
        'and `truncated` is true. Longer commands: the WebSocket action `{"action":"exec"}`. Needs the `write` scope.',
      request: { params: IdParam, body: jsonBody(ExecBody) },
      responses: { 200: jsonContent(ExecResult, "Ran"), ...problems(400, 401, 403, 404, 502, 504) },
    }),
    async (c) =>
      c.json(await execOnce(c.var.deps, actorOf(c), c.req.valid("param").id, c.req.valid("json").command), 200),
  );
