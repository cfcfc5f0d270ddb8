import { ValidationError } from "../../errors.ts";
import { type ScheduledEvent, ScheduledEventSchema, type Scheduler } from "../../ports.ts";
import { type DeadLetter, PermanentJobError, type TableQueue } from "./table-queue.ts";

/** A stored schedule whose input is not a ScheduledEvent: dead-lettered at once, never retried. */
export class InvalidScheduledEventError extends PermanentJobError {
  override name = "InvalidScheduledEventError";
}

/**
 * The Scheduler port embedded, on a TableQueue of its own (e.g. `schedules`):
 * each one-time schedule is a job whose id is the schedule name and whose
 * `visibleAt` is the fire time, so it lives in the table and survives
 * restarts. Scheduling a name again replaces its job (new time, new event,
 * attempts reset); cancelling deletes it. A fire that throws is retried with
 * the queue's backoff and dead-lettered after its `maxAttempts`, like any job.
 */
export class TableScheduler implements Scheduler {
  constructor(readonly queue: TableQueue) {}

  async schedule(name: string, at: Date, event: ScheduledEvent): Promise<void> {
    if (name.length === 0 || name.length > 256) throw new ValidationError("Schedule name must be 1 to 256 characters");
    if (Number.isNaN(at.getTime())) throw new ValidationError("Invalid schedule time");
    await this.queue.sendRaw(name, JSON.stringify(event), { visibleAt: at });
  }

  async cancel(name: string): Promise<void> {
    await this.queue.delete(name);
  }

  /** Fires due schedules through `fire`, each event validated first (an invalid one is dead-lettered). */
  start(fire: (event: ScheduledEvent) => Promise<void>): Promise<void> {
    return this.queue.start(async ({ body }) => {
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        throw new InvalidScheduledEventError("Schedule input is not JSON");
      }
      const parsed = ScheduledEventSchema.safeParse(json);
      if (!parsed.success) throw new InvalidScheduledEventError(`Invalid scheduled event: ${parsed.error.message}`);
      await fire(parsed.data);
    });
  }

  /** TableQueue.stop: waits up to `graceMs` for running fires, then abandons them to be retried. */
  stop(opts?: { graceMs?: number }): Promise<void> {
    return this.queue.stop(opts);
  }

  deadLetters(limit?: number): Promise<DeadLetter[]> {
    return this.queue.deadLetters(limit);
  }

  redrive(name: string): Promise<boolean> {
    return this.queue.redrive(name);
  }
}
