import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { actorOf } from "../actor.ts";
import { requireUser } from "../auth/middleware.ts";
import { HoistError } from "../errors.ts";
import type { AppEnv } from "../http/env.ts";
import { idOf, idParam } from "../http/ids.ts";
import { clientIp } from "../http/middleware/client-ip.ts";
import { bearer, githubSignature, jsonContent, problems } from "../http/openapi.ts";
import { validationHook } from "../http/problem.ts";
import { createAppHook } from "./app-hook.ts";
import { countFailure, failureWindow, refuseIfFailing } from "./signature-failures.ts";
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
  security: githubSignature,
  summary: "GitHub's webhook URL (push and green CI runs deploy; failed runs open incidents)",
  description:
    "Authenticated by `X-Hub-Signature-256` (HMAC-SHA256 of the raw body), not by a bearer token: verified with the " +
    "secret of the repository the payload names (each connected repository has its own), or with the operator's " +
    "global `HOIST_GITHUB_WEBHOOK_SECRET` (trusted for every repository). A delivery reaches only apps bound to that " +
    "repository's id (or, under the global secret, bound by name by an admin). Fork and pull-request workflow runs " +
    "never deploy or move incidents. Deduplicated on `X-GitHub-Delivery` for 7 days. `ping` → 200; `push` to a branch queues a " +
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

const appWebhook = createRoute({
  ...githubWebhook,
  path: "/api/webhooks/github/apps/{appId}",
  summary: "An app's own GitHub webhook URL (verified with that app's secret; reaches that app alone)",
  request: { ...githubWebhook.request, params: z.object({ appId: idOf("app") }) },
});

const rotateAppHook = createRoute({
  method: "post",
  path: "/api/apps/{id}/webhook",
  tags: ["github"],
  security: bearer,
  middleware: [requireUser],
  summary: "Give the app its own webhook URL and secret (shown once; calling again rotates the secret)",
  request: { params: idParam("app") },
  responses: {
    200: jsonContent(z.object({ url: z.string(), secret: z.string() }), "The hook URL and secret, this once"),
    ...problems(401, 404),
  },
});

/**
 * A body up to this size is read and its signature checked before the sender's signature-failure count, which
 * is then read only if the signature fails (GitHub's payloads are a few KiB to tens of KiB); a larger (or
 * unsized) one is refused on the count alone first, so a refused sender never costs a parse of megabytes.
 */
const READ_FIRST_MAX_BYTES = 256 * 1024;

/** Signature failures are counted per client address before they are answered. */
async function deliver(c: Context<AppEnv>, appId?: string) {
  const ip = clientIp(c);
  const length = Number(c.req.header("content-length") ?? Number.NaN);
  const readFirst = Number.isSafeInteger(length) && length <= READ_FIRST_MAX_BYTES;
  if (!readFirst) await refuseIfFailing(c.var.deps, ip);
  try {
    return await handleWebhook(c.var.deps, {
      appId,
      event: c.req.header("x-github-event"),
      deliveryId: c.req.header("x-github-delivery"),
      signature: c.req.header("x-hub-signature-256"),
      body: await c.req.text(),
      ip,
      failures: readFirst ? failureWindow(c.var.deps, ip) : null,
    });
  } catch (err) {
    if (err instanceof HoistError && err.code === "invalid_signature") await countFailure(c.var.deps, ip);
    throw err;
  }
}

export const webhookRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(githubWebhook, async (c) => {
    const { code, reply } = await deliver(c);
    return code === 200 ? c.json(reply, 200) : c.json(reply, 202);
  })
  .openapi(appWebhook, async (c) => {
    const { code, reply } = await deliver(c, c.req.valid("param").appId);
    return code === 200 ? c.json(reply, 200) : c.json(reply, 202);
  })
  .openapi(rotateAppHook, async (c) =>
    c.json(await createAppHook(c.var.deps, actorOf(c), c.req.valid("param").id, new URL(c.req.url).origin), 200),
  );
