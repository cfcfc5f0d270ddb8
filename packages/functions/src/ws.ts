import { createWsHandler } from "@hoist/core/realtime/ws-handler";
import { awsDeps } from "./aws-deps.ts";
import { lazySqsQueue } from "./ports/lazy.ts";

/**
 * Connect (token check), subscribe, disconnect: the table and @connections;
 * and the queue, for the jobs it cannot run itself (an `app-logs:` subscribe
 * starts the app's log tail, an `exec` runs on the worker).
 */
export const handler = createWsHandler(await awsDeps({ queue: lazySqsQueue }));
