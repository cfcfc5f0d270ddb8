import { jobHandlers } from "@hoist/core/jobs/handlers";
import { createJobWorker } from "@hoist/core/jobs/worker";
import { awsDeps } from "./aws-deps.ts";

export const handler = createJobWorker(await awsDeps(), jobHandlers);
