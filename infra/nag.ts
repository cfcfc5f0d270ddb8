import type { IGrantable } from "aws-cdk-lib/aws-iam";
import { NagSuppressions } from "cdk-nag";
import { Construct, type IConstruct } from "constructs";

/**
 * cdk-nag (AwsSolutions) suppressions, each with its reason. Everything else
 * the checks report is fixed, not suppressed (infra/stacks.test.ts fails on
 * any unsuppressed error).
 */

/**
 * What SST v2 puts in every stack: the custom-resource handler Lambda (stack
 * metadata, the API Gateway CloudWatch role). Its role and runtime are SST's.
 */
export function suppressSstCustomResourceHandler(handler: IConstruct): void {
  NagSuppressions.addResourceSuppressions(
    handler,
    [
      {
        id: "AwsSolutions-IAM4",
        reason:
          "SST's stack custom-resource handler is created by SST with CDK's default Lambda role " +
          "(AWSLambdaBasicExecutionRole: CloudWatch Logs writes only); SST does not accept a role for it.",
        appliesTo: ["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
      },
      {
        id: "AwsSolutions-L1",
        reason: "SST's stack custom-resource handler runtime is fixed by SST (nodejs22.x, in AWS support).",
      },
    ],
    true,
  );
}

/**
 * A function with `prefetchSecrets`: SST attaches to its stack's custom-resource
 * handler a policy that reads the stage's SST parameters at deploy, to write the
 * function's bound secrets into its environment.
 */
export function suppressSecretPrefetcher(fn: IConstruct): void {
  const policy = fn.node.tryFindChild("SecretPrefetcherPolicy");
  if (!policy) return;
  NagSuppressions.addResourceSuppressions(policy, [
    {
      id: "AwsSolutions-IAM5",
      reason:
        "SST's secret prefetcher (its stack custom-resource handler, run at deploy only) reads the stage's and the " +
        "app's fallback SST parameters by prefix, as SST builds it; the function itself reads none.",
      appliesTo: [{ regex: "/^Resource::arn:<AWS::Partition>:ssm:.+:parameter\\/sst\\/.+\\/\\*$/" }],
    },
  ]);
}

/** Our functions run nodejs22.x. */
export function suppressRuntimeFinding(fn: IConstruct): void {
  NagSuppressions.addResourceSuppressions(fn, [
    {
      id: "AwsSolutions-L1",
      reason:
        "nodejs22.x is the newest Lambda runtime SST v2 (2.49.x) can build and deploy; it is in AWS support. " +
        "nodejs24.x needs a move off SST v2.",
    },
  ]);
}

/** The wildcards our grants need: each names one resource's children, never `*` alone. */
const WILDCARDS = {
  tableIndexes: {
    finding: "/^Resource::.+\\/index\\/\\*$/",
    reason: "Query on the GSIs of the stage's one table: `<table arn>/index/*` covers its indexes and nothing else.",
  },
  connections: {
    finding: "/^Resource::arn:<AWS::Partition>:execute-api:.+\\/@connections\\/\\*$/",
    reason:
      "WebSocket connection ids are assigned at runtime; the grant is limited to `@connections/*` of the stage's own API.",
  },
  schedules: {
    finding: "/^Resource::arn:<AWS::Partition>:scheduler:.+:schedule\\/.+\\/\\*$/",
    reason:
      "Schedule names are made at runtime (one per running app); the grant is limited to the stage's schedule group.",
  },
} as const;

/** Records on the grantee's role (and its policies) why a scoped wildcard is needed. */
export function suppressScopedWildcard(grantee: IGrantable, kind: keyof typeof WILDCARDS): void {
  const principal = grantee.grantPrincipal;
  if (!Construct.isConstruct(principal)) return;
  const { finding, reason } = WILDCARDS[kind];
  NagSuppressions.addResourceSuppressions(
    principal,
    [{ id: "AwsSolutions-IAM5", reason, appliesTo: [{ regex: finding }] }],
    true,
  );
}

/** API routes without an API Gateway authorizer: the app authenticates every request itself. */
export function suppressRouteAuthorization(route: IConstruct, reason: string): void {
  NagSuppressions.addResourceSuppressions(route, [{ id: "AwsSolutions-APIG4", reason }], true);
}
