import type { ApiTokenPrincipal } from "../auth/api-tokens.ts";
import type { BearerCheck } from "../auth/middleware.ts";
import type { AccessClaims } from "../auth/tokens.ts";
import type { Logger } from "../logger.ts";
import type { Deps } from "../ports.ts";
import type { UserItem } from "../users/entity.ts";

/** The Hono environment every route sees. `user` and one of `claims` / `apiToken` are set by `requireUser`. */
export interface AppEnv {
  Variables: {
    requestId: string;
    deps: Deps;
    logger: Logger;
    user: UserItem;
    /** A sign-in session's access token (JWT). */
    claims?: AccessClaims;
    /** An API token (`hst_…`) and what its scopes grant. */
    apiToken?: ApiTokenPrincipal;
    /** The bearer token's first check, started early so it runs alongside the per-IP rate window (auth/middleware.ts). */
    authenticating?: Promise<BearerCheck>;
  };
}
