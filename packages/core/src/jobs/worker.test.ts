import type { SQSRecord } from "aws-lambda";
import { describe, expect, it } from "vitest";
import type { Deps, Job } from "../ports.ts";
import { createJobWorker, type JobHandlers } from "./worker.ts";

const record = (messageId: string, job: unknown): SQSRecord =>
  ({ messageId, body: typeof job === "string" ? job : JSON.stringify(job), attributes: {} }) as unknown as SQSRecord;
const silent = { debug() {}, info() {}, warn() {}, error() {} } as unknown as Deps["logger"];

describe("the job worker", () => {
  it("reports each batch's own failures when batches run at once (the embedded queues run many)", async () => {
    const settle = new Map<string, () => void>();
    const wait = (id: string) => new Promise<void>((resolve) => settle.set(id, resolve));
    const handler = async (job: Job) => {
      if (job.type !== "deploy") return;
      await wait(job.deploymentId);
      if (job.deploymentId.startsWith("bad")) throw new Error("the deploy failed");
    };
    const worker = createJobWorker({ logger: silent } as Deps, { deploy: handler } as unknown as JobHandlers);
    const failing = worker({ Records: [record("m-bad", { type: "deploy", deploymentId: "bad-1" })] });
    const fine = worker({ Records: [record("m-ok", { type: "deploy", deploymentId: "ok-1" })] });
    await new Promise((r) => setTimeout(r, 10));
    settle.get("bad-1")?.(); // the first batch fails while the second still runs
    await new Promise((r) => setTimeout(r, 10));
    settle.get("ok-1")?.();
    expect(await failing).toEqual({ batchItemFailures: [{ itemIdentifier: "m-bad" }] });
    expect(await fine).toEqual({ batchItemFailures: [] });
  });

  it("fails a record that is no job (to its DLQ after the retries), its neighbours unharmed", async () => {
    const ran: string[] = [];
    const handlers = {
      deploy: async (job: Extract<Job, { type: "deploy" }>) => void ran.push(job.deploymentId),
    } as unknown as JobHandlers;
    const result = await createJobWorker(
      { logger: silent } as Deps,
      handlers,
    )({
      Records: [
        record("m1", "not json"),
        record("m2", { type: "deploy", deploymentId: "d2" }),
        record("m3", { type: "nope" }),
      ],
    });
    expect(result.batchItemFailures.map((f) => f.itemIdentifier)).toEqual(["m1", "m3"]);
    expect(ran).toEqual(["d2"]);
  });
});
