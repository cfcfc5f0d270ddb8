import { SendMessageCommand } from "@aws-sdk/client-sqs";
import { describe, expect, it } from "vitest";
import { SqsQueue } from "./sqs-queue.ts";

function recorder() {
  const sent: SendMessageCommand[] = [];
  return {
    sent,
    send: async (command: SendMessageCommand) => {
      sent.push(command);
      return {};
    },
  };
}

const queueUrl = "https://sqs.eu-west-1.amazonaws.com/123456789012/hoist-dev-deploy";

describe("SqsQueue", () => {
  it("sends the job as a JSON body", async () => {
    const client = recorder();
    await new SqsQueue({ queueUrl, client }).send({ type: "deploy", deploymentId: "dep_1" });
    expect(client.sent[0]).toBeInstanceOf(SendMessageCommand);
    expect(client.sent[0]?.input).toEqual({
      QueueUrl: queueUrl,
      MessageBody: '{"type":"deploy","deploymentId":"dep_1"}',
    });
  });

  it("passes a delay, capped at SQS's 900 seconds", async () => {
    const client = recorder();
    const queue = new SqsQueue({ queueUrl, client });
    await queue.send({ type: "deploy", deploymentId: "dep_1" }, { delaySeconds: 30 });
    await queue.send({ type: "deploy", deploymentId: "dep_1" }, { delaySeconds: 3600 });
    expect(client.sent.map((c) => c.input.DelaySeconds)).toEqual([30, 900]);
  });

  it("refuses a job that is not a job", async () => {
    const client = recorder();
    await expect(
      new SqsQueue({ queueUrl, client }).send({ type: "deploy", deploymentId: "" } as never),
    ).rejects.toThrow();
    expect(client.sent).toEqual([]);
  });
});
