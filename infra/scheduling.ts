import { ArnFormat, RemovalPolicy, Stack } from "aws-cdk-lib";
import { Grant, type IGrantable, PolicyStatement, Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import type { IFunction } from "aws-cdk-lib/aws-lambda";
import { CfnSchedule, ScheduleGroup } from "aws-cdk-lib/aws-scheduler";
import { Construct } from "constructs";
import { suppressScopedWildcard } from "./nag.ts";

export interface SchedulingProps {
  /** Name of the stage's schedule group, e.g. `prod-hoist-auto-stop`. */
  groupName: string;
}

/** The actions the app calls on its one-time schedules (create, move, cancel). */
export const SCHEDULE_ACTIONS = ["scheduler:CreateSchedule", "scheduler:UpdateSchedule", "scheduler:DeleteSchedule"];

/**
 * The stage's EventBridge Scheduler schedule group and the role schedules run
 * as. The app creates one one-time schedule per running app in the group; the
 * role may only invoke the targets granted with `allowInvoke`.
 */
export class Scheduling extends Construct {
  readonly group: ScheduleGroup;
  /** Assumed by EventBridge Scheduler, only on behalf of schedules in this account. */
  readonly role: Role;
  /** `arn:…:schedule/<group>/*`: every schedule in the group, none outside it. */
  readonly schedulesArn: string;

  constructor(scope: Construct, id: string, props: SchedulingProps) {
    super(scope, id);
    const stack = Stack.of(this);
    // Schedules are transient (one per running app, deleted after firing); the table is the record.
    this.group = new ScheduleGroup(this, "Group", {
      scheduleGroupName: props.groupName,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.role = new Role(this, "Role", {
      description: `EventBridge Scheduler invokes Hoist's scheduled handlers (group ${props.groupName})`,
      assumedBy: new ServicePrincipal("scheduler.amazonaws.com", {
        conditions: { StringEquals: { "aws:SourceAccount": stack.account } },
      }),
    });
    this.schedulesArn = stack.formatArn({
      service: "scheduler",
      resource: "schedule",
      resourceName: `${props.groupName}/*`,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });
  }

  /** Lets schedules invoke `fn` (the unqualified ARN, which is what the app targets). */
  allowInvoke(fn: IFunction): void {
    this.role.addToPrincipalPolicy(
      new PolicyStatement({ actions: ["lambda:InvokeFunction"], resources: [fn.functionArn] }),
    );
  }

  /**
   * A recurring schedule in the group (e.g. the server status sweep): every
   * `minutes`, invoke `fn` with `input` as its event.
   */
  addRecurring(id: string, props: { fn: IFunction; minutes: number; input: Record<string, unknown> }): CfnSchedule {
    return new CfnSchedule(this, id, {
      groupName: this.group.scheduleGroupName,
      scheduleExpression: `rate(${props.minutes} minute${props.minutes === 1 ? "" : "s"})`,
      flexibleTimeWindow: { mode: "OFF" },
      target: {
        arn: props.fn.functionArn,
        roleArn: this.role.roleArn,
        input: JSON.stringify(props.input),
        retryPolicy: { maximumRetryAttempts: 0 },
      },
    });
  }

  /** Create, update and delete schedules in this group, and hand them the scheduler role. */
  allowManageSchedules(grantee: IGrantable): void {
    Grant.addToPrincipal({ grantee, actions: SCHEDULE_ACTIONS, resourceArns: [this.schedulesArn] });
    grantee.grantPrincipal.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ["iam:PassRole"],
        resources: [this.role.roleArn],
        conditions: { StringEquals: { "iam:PassedToService": "scheduler.amazonaws.com" } },
      }),
    );
    suppressScopedWildcard(grantee, "schedules");
  }
}
