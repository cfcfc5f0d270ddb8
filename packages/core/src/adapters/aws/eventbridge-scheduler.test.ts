import {
  ConflictException,
  CreateScheduleCommand,
  DeleteScheduleCommand,
  ResourceNotFoundException,
  UpdateScheduleCommand,
  ValidationException,
} from "@aws-sdk/client-scheduler";
import { describe, expect, it } from "vitest";
import type { ScheduledEvent } from "../../ports.ts";
import { atExpression, EventBridgeScheduler, type ScheduleClient, scheduleName } from "./eventbridge-scheduler.ts";

type Command = Parameters<ScheduleClient["send"]>[0];

/** Records each command; `fail` may throw for a given command. */
function recorder(fail: (command: Command) => Error | undefined = () => undefined) {
  const sent: Command[] = [];
  return {
    sent,
    send: async (command: Command) => {
      sent.push(command);
      const err = fail(command);
      if (err) throw err;
      return {};
    },
  };
}

const options = {
  groupName: "hoist-dev",
  roleArn: "arn:aws:iam::123456789012:role/hoist-dev-scheduler",
  targetArn: "arn:aws:lambda:eu-west-1:123456789012:function:hoist-dev-auto-stop",
};
const event: ScheduledEvent = { type: "auto-stop", ownerId: "usr_1", appId: "app_1", runId: "run_1" };
const at = new Date("2031-05-06T07:08:09.000Z");
const opts = (message: string) => ({ message, Message: message, $metadata: {} });

const expectedInput = {
  Name: "auto-stop-app_1",
  GroupName: "hoist-dev",
  ScheduleExpression: "at(2031-05-06T07:08:09)",
  ScheduleExpressionTimezone: "UTC",
  FlexibleTimeWindow: { Mode: "OFF" },
  ActionAfterCompletion: "DELETE",
  Target: {
    Arn: options.targetArn,
    RoleArn: options.roleArn,
    Input: JSON.stringify(event),
    RetryPolicy: { MaximumRetryAttempts: 5, MaximumEventAgeInSeconds: 3600 },
  },
};

describe("EventBridgeScheduler", () => {
  it("creates a one-time UTC schedule that deletes itself", async () => {
    const client = recorder();
    await new EventBridgeScheduler({ ...options, client }).schedule("auto-stop-app_1", at, event);
    expect(client.sent).toHaveLength(1);
    expect(client.sent[0]).toBeInstanceOf(CreateScheduleCommand);
    expect(client.sent[0]?.input).toEqual(expectedInput);
  });

  it("updates the schedule when it already exists", async () => {
    const client = recorder((c) =>
      c instanceof CreateScheduleCommand ? new ConflictException(opts("exists")) : undefined,
    );
    await new EventBridgeScheduler({ ...options, client }).schedule("auto-stop-app_1", at, event);
    expect(client.sent.map((c) => c.constructor)).toEqual([CreateScheduleCommand, UpdateScheduleCommand]);
    expect(client.sent[1]?.input).toEqual(expectedInput);
  });

  it("creates again if the schedule fired and vanished between create and update", async () => {
    let creates = 0;
    const client = recorder((c) => {
      if (c instanceof CreateScheduleCommand && creates++ === 0) return new ConflictException(opts("x"));
      if (c instanceof UpdateScheduleCommand) return new ResourceNotFoundException(opts("gone"));
      return undefined;
    });
    await new EventBridgeScheduler({ ...options, client }).schedule("auto-stop-app_1", at, event);
    expect(client.sent.map((c) => c.constructor.name)).toEqual([
      "CreateScheduleCommand",
      "UpdateScheduleCommand",
      "CreateScheduleCommand",
    ]);
  });

  it("throws other errors", async () => {
    const invalid = new ValidationException(opts("bad"));
    const client = recorder(() => invalid);
    await expect(new EventBridgeScheduler({ ...options, client }).schedule("x", at, event)).rejects.toBe(invalid);
  });

  it("moves a time in the past to a minute from now, and never rounds a time down", async () => {
    const client = recorder();
    const now = Date.parse("2031-01-01T00:00:00.000Z");
    const scheduler = new EventBridgeScheduler({ ...options, client });
    await scheduler.schedule("late", new Date(now - 5000), event, now);
    expect(client.sent[0]?.input).toMatchObject({ ScheduleExpression: "at(2031-01-01T00:01:00)" });
    expect(atExpression(new Date("2031-05-06T07:08:09.001Z"))).toBe("at(2031-05-06T07:08:10)");
  });

  it("deletes on cancel and ignores a schedule that does not exist", async () => {
    const client = recorder((c) =>
      c.input.Name === "missing" ? new ResourceNotFoundException(opts("no")) : undefined,
    );
    const scheduler = new EventBridgeScheduler({ ...options, client });
    await scheduler.cancel("auto-stop-app_1");
    await scheduler.cancel("missing");
    expect(client.sent[0]).toBeInstanceOf(DeleteScheduleCommand);
    expect(client.sent.map((c) => c.input)).toEqual([
      { Name: "auto-stop-app_1", GroupName: "hoist-dev" },
      { Name: "missing", GroupName: "hoist-dev" },
    ]);

    const failing = recorder(() => new ConflictException(opts("busy")));
    await expect(new EventBridgeScheduler({ ...options, client: failing }).cancel("x")).rejects.toThrow("busy");
  });

  it("keeps valid names and maps others to valid, deterministic, distinct ones", () => {
    expect(scheduleName("auto-stop_app.1")).toBe("auto-stop_app.1");
    const odd = scheduleName("auto-stop#app_1/run:1");
    expect(odd).toMatch(/^[0-9a-zA-Z\-_.]{1,64}$/);
    expect(odd.startsWith("auto-stop-app_1-run-1-")).toBe(true);
    expect(scheduleName("auto-stop#app_1/run:1")).toBe(odd);
    expect(scheduleName("auto-stop#app_1/run;1")).not.toBe(odd);
    const long = scheduleName("a".repeat(100));
    expect(long).toHaveLength(64);
    expect(long).not.toBe(scheduleName("a".repeat(101)));
  });
});
