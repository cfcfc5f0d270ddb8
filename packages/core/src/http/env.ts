import type { AccessClaims } from "../auth/tokens.ts";
import type { Logger } from "../logger.ts";
import type { Deps } from "../ports.ts";
import type { UserItem } from "../users/entity.ts";

/** The Hono environment every route sees. `user` and `claims` are set by `requireUser`. */
export interface AppEnv {
  Variables: {
    requestId: string;
    deps: Deps;
    logger: Logger;
    user: UserItem;
    claims: AccessClaims;
    /** The bearer token's check, started early so it runs alongside the per-IP rate window (auth/middleware.ts). */
    authenticating?: Promise<{ claims: AccessClaims; user: UserItem }>;
  };
}
