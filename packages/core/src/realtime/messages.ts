import { z } from "zod";

/** What a client may send over the WebSocket (API.md § WebSocket). */
export const ClientMessageSchema = z.discriminatedUnion("action", [
  z.object({
    action: z.literal("subscribe"),
    channel: z.string().min(1).max(200),
    since: z.number().int().min(0).max(9_999_999_998).optional(),
  }),
  z.object({ action: z.literal("unsubscribe"), channel: z.string().min(1).max(200) }),
  z.object({ action: z.literal("ping") }),
]);
export type ClientMessage = z.infer<typeof ClientMessageSchema>;

export type ServerMessage =
  | { type: "pong"; ts: number }
  | { type: "error"; message: string }
  | { type: "subscribed" | "unsubscribed"; channel: string };
