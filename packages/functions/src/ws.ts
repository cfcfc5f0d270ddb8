import { createWsHandler } from "@hoist/core/realtime/ws-handler";
import { awsDeps } from "./aws-deps.ts";

/** Connect (token check), subscribe, disconnect: the table and @connections only. */
export const handler = createWsHandler(await awsDeps());
