import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HoistError } from "../../errors.ts";
import type { AppEnv } from "../env.ts";

const withBody = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** Request bodies are JSON, else 415. */
export const requireJsonBody: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (withBody.has(c.req.method)) {
    const length = c.req.header("content-length");
    // HTTP/1.1 framing decides on Node; HTTP/2 requests through API Gateway may carry a body without a length.
    const fromNode = (c.env as { incoming?: unknown } | undefined)?.incoming !== undefined;
    const hasBody =
      c.req.header("transfer-encoding") !== undefined ||
      (length !== undefined ? length !== "0" : !fromNode && c.req.raw.body !== null);
    const type = c.req.header("content-type") ?? "";
    if (hasBody && !/^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(type)) {
      throw new HoistError(415, "unsupported_media_type", "Send the request body as application/json");
    }
  }
  await next();
};

/** At most `maxBytes` of body, else 413 without reading the rest. */
export function limitBody(maxBytes: number): MiddlewareHandler<AppEnv> {
  return bodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw new HoistError(413, "body_too_large", `Request body is larger than ${maxBytes} bytes`);
    },
  });
}
