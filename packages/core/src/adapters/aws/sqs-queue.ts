import { SendMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import { type Job, type JobQueue, JobSchema } from "../../ports.ts";

/** The subset of SQSClient this adapter uses, so tests can inject a recorder. */
export interface SqsSender {
  send(command: SendMessageCommand): Promise<unknown>;
}

/** SQS's longest message delay. */
const MAX_DELAY_SECONDS = 900;

/** The JobQueue port on AWS: one SendMessage per job, JSON body; the deploy worker Lambda consumes it. */
export class SqsQueue implements JobQueue {
  private readonly queueUrl: string;
  private readonly client: SqsSender;

  constructor(opts: { queueUrl: string; client?: SqsSender }) {
    this.queueUrl = opts.queueUrl;
    this.client = opts.client ?? new SQSClient({});
  }

  async send(job: Job, opts: { delaySeconds?: number } = {}): Promise<void> {
    const delay = opts.delaySeconds === undefined ? undefined : Math.round(opts.delaySeconds);
    await this.client.send(
      new SendMessageCommand({
        QueueUrl: this.queueUrl,
        MessageBody: JSON.stringify(JobSchema.parse(job)),
        ...(delay !== undefined ? { DelaySeconds: Math.min(Math.max(delay, 0), MAX_DELAY_SECONDS) } : {}),
      }),
    );
  }
}
