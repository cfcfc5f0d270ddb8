import { SQSClient } from "@aws-sdk/client-sqs";
import { SqsQueue } from "@hoist/core/adapters/aws/sqs-queue";
import { awsResource } from "@hoist/core/config";

export const sqsQueue = () => new SqsQueue({ queueUrl: awsResource("HOIST_QUEUE_URL"), client: new SQSClient({}) });
