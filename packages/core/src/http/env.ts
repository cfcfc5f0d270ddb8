import type { Logger } from "../logger.ts";
import type { Deps } from "../ports.ts";

/** The Hono environment every route sees. */
export interface AppEnv {
  Variables: {
    requestId: string;
    deps: Deps;
    logger: Logger;
  };
}
