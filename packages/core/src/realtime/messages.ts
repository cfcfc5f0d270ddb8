import * as z from "zod/mini";
import "../zod-mini.ts";

/** What a client may send over the WebSocket (API.md § WebSocket). */
export const ClientMessageSchema = z.discriminatedUnion("action", [
  z.object({
    action: z.literal("subscribe"),
    channel: z.string().check(z.minLength(1), z.maxLength(200)),
    since: z.optional(z.int().check(z.minimum(0), z.maximum(9_999_999_998))),
  }),
  z.object({ action: z.literal("unsubscribe"), channel: z.string().check(z.minLength(1), z.maxLength(200)) }),
  z.object({ action: z.literal("ping") }),
]);
export type ClientMessage = z.infer<typeof ClientMessageSchema>;

export type ServerMessage =
  | { type: "pong"; ts: number }
  | { type: "error"; message: string }
  | { type: "subscribed" | "unsubscribed"; channel: string };
