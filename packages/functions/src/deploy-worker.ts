import { jobHandlers } from "@hoist/core/jobs/handlers";
import { createJobWorker } from "@hoist/core/jobs/worker";
import { awsDeps } from "./aws-deps.ts";
import { everyPort } from "./ports/lazy.ts";

const deps = await awsDeps(everyPort());

// Deploys, and app start/stop jobs (which schedule the auto-stop), over SSH (ssh2 is loaded by the first job that connects).
export const handler = createJobWorker(deps, jobHandlers);
