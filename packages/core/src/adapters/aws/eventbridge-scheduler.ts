import { createHash } from "node:crypto";
import {
  CreateScheduleCommand,
  type CreateScheduleCommandInput,
  DeleteScheduleCommand,
  type RetryPolicy,
  SchedulerClient,
  UpdateScheduleCommand,
} from "@aws-sdk/client-scheduler";
import type { ScheduledEvent, Scheduler } from "../../ports.ts";

/** The subset of SchedulerClient this adapter uses, so tests can inject a recorder. */
export interface ScheduleClient {
  send(command: CreateScheduleCommand | UpdateScheduleCommand | DeleteScheduleCommand): Promise<unknown>;
}

export interface EventBridgeSchedulerOptions {
  /** The stage's schedule group. */
  groupName: string;
  /** Role EventBridge Scheduler assumes to invoke the target. */
  roleArn: string;
  /** The auto-stop Lambda. */
  targetArn: string;
  /** Default: 5 retries within an hour. */
  retryPolicy?: RetryPolicy;
  /** SQS queue for fires that exhausted their retries. */
  deadLetterArn?: string;
  client?: ScheduleClient;
}

/** `at()` must lie in the future; earlier times are moved to this far ahead. */
const MIN_LEAD_MS = 60_000;
const VALID_NAME = /^[0-9a-zA-Z\-_.]{1,64}$/;

/**
 * The Scheduler port on AWS: one one-time EventBridge schedule per name, in
 * UTC, deleted by EventBridge after it fires. Scheduling an existing name
 * updates it; cancelling a missing one is fine.
 */
export class EventBridgeScheduler implements Scheduler {
  private readonly client: ScheduleClient;

  constructor(private readonly opts: EventBridgeSchedulerOptions) {
    this.client = opts.client ?? new SchedulerClient({});
  }

  async schedule(name: string, at: Date, event: ScheduledEvent, now = Date.now()): Promise<void> {
    const input = this.scheduleInput(name, at, event, now);
    // Create, or update when it exists; if it fired (and was deleted) between the two, create again.
    for (let attempt = 0; ; attempt++) {
      try {
        await this.client.send(new CreateScheduleCommand(input));
        return;
      } catch (err) {
        if (!hasName(err, "ConflictException")) throw err;
      }
      try {
        await this.client.send(new UpdateScheduleCommand(input));
        return;
      } catch (err) {
        if (!hasName(err, "ResourceNotFoundException") || attempt >= 2) throw err;
      }
    }
  }

  async cancel(name: string): Promise<void> {
    try {
      await this.client.send(new DeleteScheduleCommand({ Name: scheduleName(name), GroupName: this.opts.groupName }));
    } catch (err) {
      if (!hasName(err, "ResourceNotFoundException")) throw err;
    }
  }

  private scheduleInput(name: string, at: Date, event: ScheduledEvent, now: number): CreateScheduleCommandInput {
    return {
      Name: scheduleName(name),
      GroupName: this.opts.groupName,
      ScheduleExpression: atExpression(new Date(Math.max(at.getTime(), now + MIN_LEAD_MS))),
      ScheduleExpressionTimezone: "UTC",
      FlexibleTimeWindow: { Mode: "OFF" },
      ActionAfterCompletion: "DELETE",
      Target: {
        Arn: this.opts.targetArn,
        RoleArn: this.opts.roleArn,
        Input: JSON.stringify(event),
        RetryPolicy: this.opts.retryPolicy ?? { MaximumRetryAttempts: 5, MaximumEventAgeInSeconds: 3600 },
        ...(this.opts.deadLetterArn ? { DeadLetterConfig: { Arn: this.opts.deadLetterArn } } : {}),
      },
    };
  }
}

/** `at(yyyy-mm-ddThh:mm:ss)` in UTC, rounded up to the second so it never fires early. */
export function atExpression(at: Date): string {
  const seconds = new Date(Math.ceil(at.getTime() / 1000) * 1000);
  return `at(${seconds.toISOString().slice(0, 19)})`;
}

/**
 * EventBridge names are `[0-9a-zA-Z-_.]+`, at most 64 long. A valid name is
 * kept; any other is made valid and suffixed with a hash of the original, so
 * the same name always maps to the same schedule and different names do not collide.
 */
export function scheduleName(name: string): string {
  if (VALID_NAME.test(name)) return name;
  const hash = createHash("sha256").update(name).digest("hex").slice(0, 12);
  return `${name.replace(/[^0-9a-zA-Z\-_.]/g, "-").slice(0, 64 - hash.length - 1)}-${hash}`;
}

function hasName(err: unknown, name: string): boolean {
  return err instanceof Error && err.name === name;
}
