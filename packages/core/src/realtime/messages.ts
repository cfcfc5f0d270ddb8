import * as z from "zod/mini";
import "../zod-mini.ts";
import type { AppLogMessage } from "../operate/app-log-publisher.ts";
import type { ExecEndMessage, ExecLineMessage } from "../operate/exec-output.ts";
import type { AppLogErrorMessage } from "../operate/tail.ts";
import type { MetricsPoint } from "../servers/metrics.ts";

/** What a client may send over the WebSocket (API.md § WebSocket). */
export const ClientMessageSchema = z.discriminatedUnion("action", [
  z.object({
    action: z.literal("subscribe"),
    channel: z.string().check(z.minLength(1), z.maxLength(200)),
    since: z.optional(z.int().check(z.minimum(0), z.maximum(9_999_999_998))),
  }),
  z.object({ action: z.literal("unsubscribe"), channel: z.string().check(z.minLength(1), z.maxLength(200)) }),
  z.object({ action: z.literal("ping") }),
  /** Runs `command` once in the app's cdPath with its environment (operate/exec.ts); `id` names it on this connection. */
  z.object({
    action: z.literal("exec"),
    id: z.string().check(z.regex(/^[A-Za-z0-9_-]{1,64}$/)),
    appId: z.string().check(z.regex(/^app_[A-Za-z0-9_-]{1,64}$/)),
    command: z.string().check(z.minLength(1), z.maxLength(4096)),
  }),
  z.object({ action: z.literal("exec-cancel"), id: z.string().check(z.regex(/^[A-Za-z0-9_-]{1,64}$/)) }),
]);
export type ClientMessage = z.infer<typeof ClientMessageSchema>;

export type ServerMessage =
  | { type: "pong"; ts: number }
  /** `id`: the exec a refusal is about. */
  | { type: "error"; message: string; id?: string }
  | { type: "subscribed" | "unsubscribed"; channel: string }
  /** Channel `server:<id>`: the status sweep's new point. */
  | { type: "metrics"; serverId: string; point: MetricsPoint }
  /** Channel `app-logs:<appId>`: container log lines as they come, and a failure of the tail's command. */
  | AppLogMessage
  | AppLogErrorMessage
  /** To the connection that ran an exec: its output lines, then its end. */
  | ExecLineMessage
  | ExecEndMessage;
