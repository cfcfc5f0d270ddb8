import { BatchProcessor, EventType, processPartialResponse } from "@aws-lambda-powertools/batch";
import type { SQSEvent, SQSRecord } from "aws-lambda";
import { type Deps, type Job, JobSchema } from "../ports.ts";

/** A message that can never succeed (bad JSON, unknown job type): fails its record so it ends in the DLQ. */
export class PoisonMessageError extends Error {
  override name = "PoisonMessageError";
}

export type JobHandlers = { [T in Job["type"]]: (job: Extract<Job, { type: T }>, deps: Deps) => Promise<void> };

export function parseJob(body: string): Job {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new PoisonMessageError("Job body is not JSON");
  }
  const parsed = JobSchema.safeParse(json);
  if (!parsed.success) throw new PoisonMessageError(`Job body does not match a job: ${parsed.error.message}`);
  return parsed.data;
}

/**
 * The SQS-triggered worker: each record is parsed with zod and handled on its
 * own; failures are reported per record (partial batch response), so one bad
 * record never fails its neighbours. Handlers are idempotent: SQS and the
 * local queue deliver at least once.
 */
export function createJobWorker(deps: Deps, handlers: JobHandlers) {
  const handleRecord = async (record: SQSRecord) => {
    const job = parseJob(record.body);
    const attempt = Number(record.attributes?.ApproximateReceiveCount ?? 1);
    deps.logger.debug("job", { type: job.type, messageId: record.messageId, attempt });
    try {
      await (handlers[job.type] as (job: Job, deps: Deps) => Promise<void>)(job, deps);
    } catch (err) {
      deps.logger.error("job failed", { type: job.type, messageId: record.messageId, attempt, error: err });
      throw err;
    }
  };
  // A batch whose every record failed still answers with its failures (not a throw), like any other batch.
  // A processor per batch: it keeps the batch's results, and the embedded queues run several batches at once.
  return (event: SQSEvent) =>
    processPartialResponse(event, handleRecord, new BatchProcessor(EventType.SQS), { throwOnFullBatchFailure: false });
}
