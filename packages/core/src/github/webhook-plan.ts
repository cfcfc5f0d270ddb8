import { z } from "zod";
import { ValidationError } from "../errors.ts";
import { type RunPlan, toRunPlan, WorkflowRunPayload } from "../workflow-runs/service.ts";

/**
 * What a signed delivery asks for, decided from its headers and payload
 * alone (no reads): a ping, a push to deploy, a workflow run to record, or
 * nothing. Judged only after the signature: an unsigned body learns nothing.
 */

const EVENT = /^[a-z][a-z_]{0,63}$/;
const DELIVERY_ID = /^[A-Za-z0-9._:-]{1,100}$/;
const SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const NULL_SHA = /^0+$/;

/** Whether `id` can be a delivery id at all (its claim is read only then). */
export const isDeliveryId = (id: string) => DELIVERY_ID.test(id);

const PushPayload = z.object({
  ref: z.string().min(1).max(1024),
  after: z.string().max(64),
  deleted: z.boolean().optional(),
  repository: z.object({ id: z.number().int().optional(), full_name: z.string().min(3).max(200) }),
  head_commit: z
    .object({
      message: z.string().nullish(),
      author: z.object({ name: z.string().nullish() }).nullish(),
    })
    .nullish(),
  pusher: z.object({ name: z.string().nullish() }).nullish(),
});

export type PushPlan = {
  kind: "push";
  repo: string;
  repoId: number | null;
  branch: string;
  commitSha: string;
  commitMessage: string | null;
  author: string | null;
};

export type Plan =
  | { kind: "ping"; repo: string | null; zen: string | null }
  | { kind: "ignore"; repo: string | null; reason: string }
  | { kind: "workflow_run"; repo: string; run: RunPlan }
  | PushPlan;

/** The body as JSON, or undefined when it is not JSON (judged after the signature). */
export function parseBody(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

/** The event and delivery id headers, trimmed; 400 naming each one missing or malformed. */
export function deliveryHeaders(req: { event: string | undefined; deliveryId: string | undefined }) {
  const event = req.event?.trim() ?? "";
  const deliveryId = req.deliveryId?.trim() ?? "";
  const bad = [
    ...(EVENT.test(event) ? [] : [{ path: "header.x-github-event", message: "Required: a GitHub event name" }]),
    ...(DELIVERY_ID.test(deliveryId)
      ? []
      : [{ path: "header.x-github-delivery", message: "Required: up to 100 letters, digits, '-', '_', '.', ':'" }]),
  ];
  if (bad.length > 0) throw new ValidationError("Missing or invalid GitHub delivery headers", bad);
  return { event, deliveryId };
}

/** The plan for a payload; 400 when it is not a JSON object or not the event's shape. */
export function planEvent(event: string, payload: unknown): Plan {
  if (payload === undefined) throw new ValidationError("Malformed JSON in request body");
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    throw new ValidationError("The webhook payload must be a JSON object");
  }
  const body = payload as Record<string, unknown>;
  const repository = body.repository as { full_name?: unknown } | null | undefined;
  const repo = typeof repository?.full_name === "string" ? repository.full_name.slice(0, 200) : null;
  if (event === "ping") return { kind: "ping", repo, zen: typeof body.zen === "string" ? body.zen : null };
  if (event === "workflow_run") return planWorkflowRun(body);
  if (event !== "push") return { kind: "ignore", repo, reason: `${event} events are not handled` };
  return planPush(body);
}

const issues = (error: z.ZodError) =>
  error.issues.map((i) => ({ path: ["body", ...i.path.map(String)].join("."), message: i.message }));

function planPush(payload: Record<string, unknown>): Plan {
  const parsed = PushPayload.safeParse(payload);
  if (!parsed.success) throw new ValidationError("Not a push event payload", issues(parsed.error));
  const push = parsed.data;
  const fullName = push.repository.full_name;
  if (!push.ref.startsWith("refs/heads/")) {
    const what = push.ref.startsWith("refs/tags/") ? "a tag push" : "not a branch push";
    return { kind: "ignore", repo: fullName, reason: `${push.ref} is ${what}` };
  }
  const branch = push.ref.slice("refs/heads/".length);
  if (push.deleted === true || NULL_SHA.test(push.after)) {
    return { kind: "ignore", repo: fullName, reason: `Branch ${branch} was deleted` };
  }
  if (!SHA.test(push.after)) {
    throw new ValidationError("Not a push event payload", [{ path: "body.after", message: "A commit SHA" }]);
  }
  return {
    kind: "push",
    repo: fullName,
    repoId: push.repository.id ?? null,
    branch,
    commitSha: push.after,
    commitMessage: push.head_commit?.message?.slice(0, 4000) ?? null,
    author: (push.head_commit?.author?.name ?? push.pusher?.name)?.slice(0, 200) ?? null,
  };
}

function planWorkflowRun(payload: Record<string, unknown>): Plan {
  const parsed = WorkflowRunPayload.safeParse(payload);
  if (!parsed.success) throw new ValidationError("Not a workflow_run event payload", issues(parsed.error));
  const run = toRunPlan(parsed.data);
  const repo = parsed.data.repository.full_name;
  if (!run) return { kind: "ignore", repo, reason: "The workflow run has no head branch" };
  return { kind: "workflow_run", repo, run };
}
