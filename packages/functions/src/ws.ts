import { createWsHandler } from "@hoist/core/realtime/ws-handler";
import { awsDeps } from "./aws-deps.ts";

export const handler = createWsHandler(await awsDeps());
