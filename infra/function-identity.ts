import type { RemovalPolicy } from "aws-cdk-lib";
import { PolicyStatement, Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { LogGroup, RetentionDays } from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";

export interface FunctionIdentityProps {
  /** What the function is, for the role's description. */
  description: string;
  removalPolicy: RemovalPolicy;
  retention?: RetentionDays;
}

/**
 * A Lambda function's own role and log group. The role starts with nothing but
 * writing to that log group (instead of the AWS-managed
 * AWSLambdaBasicExecutionRole, which allows every log group); the stacks add
 * each permission the function needs. The log group has a retention period.
 */
export class FunctionIdentity extends Construct {
  readonly role: Role;
  readonly logGroup: LogGroup;

  constructor(scope: Construct, id: string, props: FunctionIdentityProps) {
    super(scope, id);
    this.logGroup = new LogGroup(this, "Logs", {
      retention: props.retention ?? RetentionDays.ONE_MONTH,
      removalPolicy: props.removalPolicy,
    });
    this.role = new Role(this, "Role", {
      description: props.description,
      assumedBy: new ServicePrincipal("lambda.amazonaws.com"),
    });
    this.role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
        // The log group's Arn attribute ends in `:*`, i.e. its log streams.
        resources: [this.logGroup.logGroupArn],
      }),
    );
  }
}
