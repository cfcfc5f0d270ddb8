import { Duration } from "aws-cdk-lib";
import { Queue, QueueEncryption } from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";

export interface DeployQueueProps {
  /** Longer than the worker's timeout, so a message is never handed out twice while being worked on. */
  visibilityTimeout: Duration;
  /** Receives before a message moves to the DLQ (HOIST_QUEUE_MAX_ATTEMPTS on the embedded runtime). */
  maxReceiveCount: number;
  /** A fixed name, so functions created before the queue can address it (see stacks/Schedules.ts). */
  queueName?: string;
}

/** The deploy job queue and its dead-letter queue, both encrypted and TLS-only. */
export class DeployQueue extends Construct {
  readonly queue: Queue;
  readonly deadLetterQueue: Queue;

  constructor(scope: Construct, id: string, props: DeployQueueProps) {
    super(scope, id);
    this.deadLetterQueue = new Queue(this, "DeadLetter", {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    this.queue = new Queue(this, "Queue", {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      queueName: props.queueName,
      visibilityTimeout: props.visibilityTimeout,
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount },
    });
  }
}
