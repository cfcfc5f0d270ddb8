import { createHttpApp } from "@hoist/core/http/app";
import { handle } from "hono/aws-lambda";
import { awsDeps } from "./aws-deps.ts";
import { everyPort } from "./ports/lazy.ts";

const deps = await awsDeps(everyPort());
const app = handle(createHttpApp(deps));

/** The Hono app; the requests it counted for `GET /api/usage` are written before Lambda may freeze the instance. */
export const handler: typeof app = async (event, context) => {
  try {
    return await app(event, context);
  } finally {
    await deps.usage.flush();
  }
};
