import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { HoistError } from "../errors.ts";
import type { AppEnv } from "../http/env.ts";
import { clientIp } from "../http/middleware/client-ip.ts";
import { jsonContent, problems } from "../http/openapi.ts";
import { validationHook } from "../http/problem.ts";
import { countFailure, refuseIfFailing } from "./signature-failures.ts";
import { handleWebhook } from "./webhooks.ts";

const WebhookReply = z
  .object({
    status: z.enum(["pong", "accepted", "ignored", "duplicate"]),
    event: z.string(),
    deliveryId: z.string(),
    deployments: z.array(z.string()).openapi({ description: "Deployments this delivery queued" }),
    reason: z.string().optional().openapi({ description: "Why nothing was deployed" }),
    zen: z.string().optional(),
  })
  .openapi("GitHubWebhookReply");

const header = (name: string, description: string) => ({
  name,
  in: "header" as const,
  required: true,
  description,
  schema: { type: "string" as const },
});

const githubWebhook = createRoute({
  method: "post",
  path: "/api/webhooks/github",
  tags: ["github"],
  summary: "GitHub's webhook URL (push and green CI runs deploy; failed runs open incidents)",
  description:
    "Authenticated by `X-Hub-Signature-256` (HMAC-SHA256 of the raw body with the shared webhook secret), not by a " +
    "bearer token. Deduplicated on `X-GitHub-Delivery` for 7 days. `ping` → 200; `push` to a branch queues a " +
    "deployment for every app on that repository and branch with `autoDeploy` and `deployOn: push` → 202; " +
    "`workflow_run` is recorded: a completed failure opens (or joins) an incident, a completed success resolves it " +
    "and deploys the apps with `deployOn: ci-success` → 202; other events → 202 `ignored`. No SSH or GitHub call " +
    "happens before the answer.",
  // Documented, not validated by zod: the signature must be checked on the raw bytes first.
  parameters: [
    header("X-Hub-Signature-256", "`sha256=` and the hex HMAC-SHA256 of the body"),
    header("X-GitHub-Event", "The event name (`ping`, `push`, …)"),
    header("X-GitHub-Delivery", "The delivery's unique id (up to 100 characters)"),
  ],
  request: {
    body: {
      required: true,
      description: "GitHub's event payload, as sent (`application/json` content type)",
      content: { "application/json": { schema: { type: "object" } } },
    },
  },
  responses: {
    200: jsonContent(WebhookReply, "`ping` answered"),
    202: jsonContent(WebhookReply, "Accepted (deployments queued), ignored, or a duplicate delivery"),
    ...problems(400, 401, 413, 415, 429, 503),
  },
});

export const webhookRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook }).openapi(
  githubWebhook,
  async (c) => {
    const ip = clientIp(c);
    await refuseIfFailing(c.var.deps, ip);
    let answer: Awaited<ReturnType<typeof handleWebhook>>;
    try {
      answer = await handleWebhook(c.var.deps, {
        event: c.req.header("x-github-event"),
        deliveryId: c.req.header("x-github-delivery"),
        signature: c.req.header("x-hub-signature-256"),
        body: await c.req.text(),
        ip,
      });
    } catch (err) {
      if (err instanceof HoistError && err.code === "invalid_signature") await countFailure(c.var.deps, ip);
      throw err;
    }
    const { code, reply } = answer;
    return code === 200 ? c.json(reply, 200) : c.json(reply, 202);
  },
);
