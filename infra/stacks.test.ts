import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Aspects, type Stack } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import type { SynthesisMessage } from "aws-cdk-lib/cx-api";
import { AwsSolutionsChecks } from "cdk-nag";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * Synthesizes the stacks exactly as `sst deploy --stage test` would, offline:
 * no AWS credentials, no network (vitest's NODE_ENV=test makes SST skip its
 * bootstrap lookup; functions are bundled with esbuild locally), then asserts
 * the templates and runs cdk-nag's AWS Solutions checks.
 */

// SST reads HOME and telemetry settings when it loads: set them first, import it dynamically.
process.env.SST_TELEMETRY_DISABLED = "1";
const scratch: string[] = [mkdtempSync(path.join(tmpdir(), "hoist-sst-home-"))];
process.env.HOME = scratch[0];
// SST runs `npm install` in each function's build directory (for native
// modules; none here): keep npm off the network.
process.env.npm_config_offline = "true";
process.env.npm_config_audit = "false";
process.env.npm_config_fund = "false";
process.env.npm_config_update_notifier = "false";

const ACCOUNT = "123456789012";
const REGION = "us-east-1";

// Every resource this test reads has Properties.
type Resource = { Type: string; Properties: Record<string, unknown>; [key: string]: unknown };
type Statement = { Effect: string; Action: string | string[]; Resource: unknown; Condition?: unknown };

interface Synth {
  data: Template;
  realtime: Template;
  schedules: Template;
  jobs: Template;
  api: Template;
  stacks: Stack[];
  messages(stack: Stack): SynthesisMessage[];
}

let built: Synth;
let prodData: Template;

async function synth(stage: string, opts: { nag: boolean }): Promise<Synth> {
  const { App } = await import("sst/constructs/App.js");
  const { getStack } = await import("sst/constructs");
  const { Data } = await import("../stacks/Data.ts");
  const { Realtime } = await import("../stacks/Realtime.ts");
  const { Schedules } = await import("../stacks/Schedules.ts");
  const { Jobs } = await import("../stacks/Jobs.ts");
  const { Api } = await import("../stacks/Api.ts");
  const config = (await import("../sst.config.ts")).default;

  const outdir = mkdtempSync(path.join(tmpdir(), `hoist-cdk-${stage}-`));
  scratch.push(outdir);
  const app = new App({ mode: "deploy", stage, name: "hoist", region: REGION, account: ACCOUNT }, { outdir });
  await config.stacks(app);
  if (opts.nag) Aspects.of(app).add(new AwsSolutionsChecks());
  await app.finish();
  // getStack looks in the app that ran stacks last: resolve everything before the next synth.
  const stacks = [Data, Realtime, Schedules, Jobs, Api].map((s) => getStack(s) as Stack);
  const [data, realtime, schedules, jobs, api] = stacks.map((s) => Template.fromStack(s)) as [
    Template,
    Template,
    Template,
    Template,
    Template,
  ];
  // One synthesis only: SST's unique-id aspect refuses a second (which Annotations.fromStack would force).
  const assembly = app.synth();
  const messages = (stack: Stack) => assembly.getStackArtifact(stack.artifactId).messages;
  return { data, realtime, schedules, jobs, api, stacks, messages };
}

beforeAll(async () => {
  const { initProject } = await import("sst/project.js");
  await initProject({ stage: "test" });
  built = await synth("test", { nag: true });
  prodData = (await synth("prod", { nag: false })).data;
}, 120_000);

afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

function all(): Template[] {
  return [built.data, built.realtime, built.schedules, built.jobs, built.api];
}

function resources(t: Template, type: string): [string, Resource][] {
  return Object.entries(t.findResources(type)) as [string, Resource][];
}

/** The one Lambda whose logical id starts with `prefix` (SST Function ids are the construct id + hash). */
function lambda(t: Template, prefix: string): [string, Resource] {
  const found = resources(t, "AWS::Lambda::Function").filter(([id]) => id.startsWith(prefix));
  expect(found, `one Lambda named ${prefix}*`).toHaveLength(1);
  return found[0] as [string, Resource];
}

function policyStatements(policy: Resource): Statement[] {
  return (policy.Properties.PolicyDocument as { Statement: Statement[] }).Statement;
}

function env(fn: Resource): Record<string, unknown> {
  const e = fn.Properties.Environment as { Variables: Record<string, unknown> } | undefined;
  return e?.Variables ?? {};
}

function hoistVars(fn: Resource): string[] {
  return Object.keys(env(fn))
    .filter((k) => k.startsWith("HOIST_"))
    .sort();
}

/** Every statement of the IAM policies attached to `fn`'s role. */
function statementsOf(t: Template, fn: Resource): Statement[] {
  const role = (fn.Properties.Role as { "Fn::GetAtt": [string, string] })["Fn::GetAtt"][0];
  return resources(t, "AWS::IAM::Policy")
    .filter(([, p]) =>
      (p.Properties.Roles as unknown[]).some((r) => JSON.stringify(r) === JSON.stringify({ Ref: role })),
    )
    .flatMap(([, p]) => policyStatements(p));
}

function actions(s: Statement): string[] {
  return Array.isArray(s.Action) ? s.Action : [s.Action];
}

function resourceList(s: Statement): unknown[] {
  return Array.isArray(s.Resource) ? s.Resource : [s.Resource];
}

function allowed(statements: Statement[], prefix: string): string[] {
  return statements
    .filter((s) => s.Effect === "Allow")
    .flatMap(actions)
    .filter((a) => a.startsWith(prefix))
    .sort();
}

describe("Data", () => {
  it("builds the single table from the shared definition", () => {
    built.data.hasResourceProperties("AWS::DynamoDB::Table", {
      KeySchema: [
        { AttributeName: "pk", KeyType: "HASH" },
        { AttributeName: "sk", KeyType: "RANGE" },
      ],
      BillingMode: "PAY_PER_REQUEST",
      TimeToLiveSpecification: { AttributeName: "expiresAt", Enabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      GlobalSecondaryIndexes: [1, 2, 3].map((n) => ({
        IndexName: `gsi${n}`,
        KeySchema: [
          { AttributeName: `gsi${n}pk`, KeyType: "HASH" },
          { AttributeName: `gsi${n}sk`, KeyType: "RANGE" },
        ],
        Projection: { ProjectionType: "ALL" },
      })),
    });
    built.data.resourceCountIs("AWS::DynamoDB::Table", 1);
  });

  it("rotates the KMS key", () => {
    built.data.hasResourceProperties("AWS::KMS::Key", { EnableKeyRotation: true });
    built.data.hasResourceProperties("AWS::KMS::Alias", { AliasName: "alias/test-hoist-secrets" });
  });

  it("destroys table and key on a non-production stage", () => {
    built.data.hasResource("AWS::DynamoDB::Table", { DeletionPolicy: "Delete" });
    built.data.hasResource("AWS::KMS::Key", { DeletionPolicy: "Delete" });
  });

  it("retains table and key on prod, with deletion protection on the table", () => {
    prodData.hasResource("AWS::DynamoDB::Table", {
      DeletionPolicy: "Retain",
      UpdateReplacePolicy: "Retain",
      Properties: Match.objectLike({ DeletionProtectionEnabled: true }),
    });
    prodData.hasResource("AWS::KMS::Key", { DeletionPolicy: "Retain", UpdateReplacePolicy: "Retain" });
  });
});

describe("Jobs", () => {
  it("redrives to a DLQ after 5 receives, with visibility above the worker timeout", () => {
    const queues = resources(built.jobs, "AWS::SQS::Queue");
    expect(queues).toHaveLength(2);
    const main = queues.find(([, q]) => q.Properties.RedrivePolicy);
    const dlq = queues.find(([, q]) => !q.Properties.RedrivePolicy);
    expect(main && dlq).toBeTruthy();
    const [, queue] = main as [string, Resource];
    const [dlqId] = dlq as [string, Resource];
    expect(queue.Properties.RedrivePolicy).toEqual({
      deadLetterTargetArn: { "Fn::GetAtt": [dlqId, "Arn"] },
      maxReceiveCount: 5,
    });
    const [, worker] = lambda(built.jobs, "DeployWorker");
    expect(worker.Properties.Timeout).toBe(900);
    expect(queue.Properties.VisibilityTimeout).toBe(960);
    expect(queue.Properties.VisibilityTimeout as number).toBeGreaterThan(worker.Properties.Timeout as number);
    for (const [, q] of queues) expect(q.Properties.SqsManagedSseEnabled).toBe(true);
  });

  it("denies non-TLS access to both queues", () => {
    const policies = resources(built.jobs, "AWS::SQS::QueuePolicy");
    expect(policies).toHaveLength(2);
    for (const [, p] of policies) {
      expect(p.Properties.PolicyDocument).toMatchObject({
        Statement: [{ Effect: "Deny", Action: "sqs:*", Condition: { Bool: { "aws:SecureTransport": "false" } } }],
      });
    }
  });

  it("feeds the worker one message at a time with partial batch failures", () => {
    const [workerId] = lambda(built.jobs, "DeployWorker");
    const [queueId] = resources(built.jobs, "AWS::SQS::Queue").find(([, q]) => q.Properties.RedrivePolicy) as [
      string,
      Resource,
    ];
    built.jobs.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
      FunctionName: { Ref: workerId },
      EventSourceArn: { "Fn::GetAtt": [queueId, "Arn"] },
      BatchSize: 1,
      FunctionResponseTypes: ["ReportBatchItemFailures"],
    });
  });
});

describe("Api and Realtime", () => {
  it("routes every HTTP request to the one Hono Lambda", () => {
    built.api.hasResourceProperties("AWS::ApiGatewayV2::Api", { ProtocolType: "HTTP" });
    built.api.hasResourceProperties("AWS::ApiGatewayV2::Route", { RouteKey: "$default" });
    built.api.resourceCountIs("AWS::ApiGatewayV2::Route", 1);
    const [httpId] = lambda(built.api, "Http");
    built.api.hasResourceProperties("AWS::ApiGatewayV2::Integration", {
      IntegrationUri: { "Fn::GetAtt": [httpId, "Arn"] },
    });
    built.api.hasResourceProperties("AWS::ApiGatewayV2::Stage", {
      AccessLogSettings: Match.objectLike({ DestinationArn: Match.anyValue() }),
    });
  });

  it("routes $connect, $disconnect and $default to one WebSocket Lambda", () => {
    built.realtime.hasResourceProperties("AWS::ApiGatewayV2::Api", {
      ProtocolType: "WEBSOCKET",
      RouteSelectionExpression: "$request.body.action",
    });
    const routes = resources(built.realtime, "AWS::ApiGatewayV2::Route").map(([, r]) => r.Properties.RouteKey);
    expect(routes.sort()).toEqual(["$connect", "$default", "$disconnect"]);
    const [wsId] = lambda(built.realtime, "Ws");
    const targets = resources(built.realtime, "AWS::ApiGatewayV2::Integration").map(([, i]) =>
      JSON.stringify(i.Properties.IntegrationUri),
    );
    expect(targets).toHaveLength(3);
    for (const target of targets) expect(target).toContain(`"${wsId}","Arn"`);
    built.realtime.hasResourceProperties("AWS::ApiGatewayV2::Stage", {
      StageName: "test",
      AccessLogSettings: Match.objectLike({ DestinationArn: Match.anyValue() }),
    });
  });

  it("gives functions the WebSocket management endpoint of the stage", () => {
    const [, ws] = lambda(built.realtime, "Ws");
    const endpoint = JSON.stringify(env(ws).HOIST_WS_ENDPOINT);
    expect(endpoint).toContain('"https://"');
    expect(endpoint).toContain(".execute-api.");
    expect(endpoint).toMatch(/"\/test"\]/);
    // Other stacks build the same URL from the imported API id.
    const [, http] = lambda(built.api, "Http");
    const imported = JSON.stringify(env(http).HOIST_WS_ENDPOINT);
    expect(imported).toContain("Fn::ImportValue");
    expect(imported).toMatch(/"\/test"\]/);
  });
});

describe("Schedules", () => {
  it("creates the stage's schedule group", () => {
    built.schedules.hasResourceProperties("AWS::Scheduler::ScheduleGroup", { Name: "test-hoist-schedules" });
  });

  it("runs the server status sweep every 5 minutes through the scheduled-events function", () => {
    const [autoStopId] = lambda(built.schedules, "AutoStop");
    built.schedules.hasResourceProperties("AWS::Scheduler::Schedule", {
      GroupName: Match.anyValue(),
      ScheduleExpression: "rate(5 minutes)",
      FlexibleTimeWindow: { Mode: "OFF" },
      Target: Match.objectLike({
        Arn: { "Fn::GetAtt": [autoStopId, "Arn"] },
        Input: JSON.stringify({ type: "status-sweep" }),
      }),
    });
  });

  it("lets only EventBridge Scheduler of this account assume the role, to invoke only auto-stop", () => {
    const [autoStopId, autoStop] = lambda(built.schedules, "AutoStop");
    expect(autoStop.Properties.FunctionName).toBe("test-hoist-auto-stop");
    const roles = resources(built.schedules, "AWS::IAM::Role").filter(([, r]) =>
      JSON.stringify(r.Properties.AssumeRolePolicyDocument).includes("scheduler.amazonaws.com"),
    );
    expect(roles).toHaveLength(1);
    const [roleId, role] = roles[0] as [string, Resource];
    expect(role.Properties.AssumeRolePolicyDocument).toMatchObject({
      Statement: [
        {
          Action: "sts:AssumeRole",
          Effect: "Allow",
          Principal: { Service: "scheduler.amazonaws.com" },
          Condition: { StringEquals: { "aws:SourceAccount": ACCOUNT } },
        },
      ],
    });
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    const statements = resources(built.schedules, "AWS::IAM::Policy")
      .filter(([, p]) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: roleId }]))
      .flatMap(([, p]) => policyStatements(p));
    expect(statements).toEqual([
      { Action: "lambda:InvokeFunction", Effect: "Allow", Resource: { "Fn::GetAtt": [autoStopId, "Arn"] } },
    ]);
  });
});

describe("functions", () => {
  const fns = () => ({
    http: lambda(built.api, "Http")[1],
    ws: lambda(built.realtime, "Ws")[1],
    worker: lambda(built.jobs, "DeployWorker")[1],
    autoStop: lambda(built.schedules, "AutoStop")[1],
  });

  it("run nodejs22.x on arm64, every Lambda in the app", () => {
    for (const t of all()) {
      for (const [, fn] of resources(t, "AWS::Lambda::Function")) {
        expect(fn.Properties.Runtime).toBe("nodejs22.x");
      }
    }
    for (const fn of Object.values(fns())) {
      expect(fn.Properties.Architectures).toEqual(["arm64"]);
      expect(fn.Properties.Handler).toMatch(/\.handler$/);
    }
  });

  it("get the resource names they use and no others", () => {
    const f = fns();
    expect(hoistVars(f.http)).toEqual([
      "HOIST_AUTO_STOP_FUNCTION_ARN",
      "HOIST_KMS_KEY_ID",
      "HOIST_PUBLIC_WS_URL",
      "HOIST_QUEUE_URL",
      "HOIST_SCHEDULER_ROLE_ARN",
      "HOIST_SCHEDULE_GROUP",
      "HOIST_STAGE",
      "HOIST_TABLE_NAME",
      "HOIST_WS_ENDPOINT",
    ]);
    // The queue: an app-logs subscribe starts the log tail job, an exec queues its run.
    expect(hoistVars(f.ws)).toEqual(["HOIST_QUEUE_URL", "HOIST_STAGE", "HOIST_TABLE_NAME", "HOIST_WS_ENDPOINT"]);
    expect(JSON.stringify(env(f.ws).HOIST_QUEUE_URL)).toContain("/test-hoist-deploy");
    expect(hoistVars(f.worker)).toEqual([
      "HOIST_AUTO_STOP_FUNCTION_ARN",
      "HOIST_KMS_KEY_ID",
      "HOIST_QUEUE_URL",
      "HOIST_SCHEDULER_ROLE_ARN",
      "HOIST_SCHEDULE_GROUP",
      "HOIST_STAGE",
      "HOIST_TABLE_NAME",
      "HOIST_WS_ENDPOINT",
    ]);
    expect(hoistVars(f.autoStop)).toEqual([
      "HOIST_AUTO_STOP_FUNCTION_ARN",
      "HOIST_KMS_KEY_ID",
      "HOIST_QUEUE_URL",
      "HOIST_SCHEDULER_ROLE_ARN",
      "HOIST_SCHEDULE_GROUP",
      "HOIST_STAGE",
      "HOIST_TABLE_NAME",
      "HOIST_WS_ENDPOINT",
    ]);
    expect(env(f.http).HOIST_STAGE).toBe("test");
    expect(env(f.autoStop).HOIST_AUTO_STOP_FUNCTION_ARN).toEqual({
      "Fn::Join": [
        "",
        ["arn:", { Ref: "AWS::Partition" }, `:lambda:${REGION}:${ACCOUNT}:function:test-hoist-auto-stop`],
      ],
    });
  });

  it("get the SST secrets they use and no others", () => {
    const secrets = (fn: Resource) =>
      Object.keys(env(fn))
        .filter((k) => k.startsWith("SST_Secret_value_"))
        .map((k) => k.replace("SST_Secret_value_", ""))
        .sort();
    const f = fns();
    expect(secrets(f.http)).toEqual(["GITHUB_CLIENT_SECRET", "GITHUB_WEBHOOK_SECRET", "JWT_PRIVATE_KEY"]);
    expect(secrets(f.ws)).toEqual(["JWT_PRIVATE_KEY"]);
    expect(secrets(f.worker)).toEqual([]);
    expect(secrets(f.autoStop)).toEqual([]);
  });

  it("have their bound secrets written into their environment at deploy (http, ws), not fetched at each cold start", () => {
    const prefetched = (t: Template) =>
      resources(t, "Custom::SecretPrefetcher").map(([, r]) => JSON.stringify(r.Properties.functionName));
    const ref = (t: Template, prefix: string) => JSON.stringify({ Ref: lambda(t, prefix)[0] });
    expect(prefetched(built.api)).toEqual([ref(built.api, "Http")]);
    expect(prefetched(built.realtime)).toEqual([ref(built.realtime, "Ws")]);
    expect(prefetched(built.jobs)).toEqual([]);
    expect(prefetched(built.schedules)).toEqual([]);
  });

  it("http may read the optional OpenID Connect secrets, which it fetches on first use, and no other parameter", () => {
    const param = (path: string) => ({
      "Fn::Join": ["", ["arn:", { Ref: "AWS::Partition" }, `:ssm:${REGION}:${ACCOUNT}:parameter${path}`]],
    });
    const ssmReads = (fn: Resource, t: Template) =>
      statementsOf(t, fn).filter((s) => actions(s).some((a) => a.startsWith("ssm:")));
    const f = fns();
    const oidc = ssmReads(f.http, built.api).find((s) => JSON.stringify(s.Resource).includes("/Secret/OIDC_ISSUER/"));
    expect(oidc).toEqual({
      Action: "ssm:GetParameters",
      Effect: "Allow",
      Resource: ["OIDC_ISSUER", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET"].flatMap((name) => [
        param(`/sst/hoist/test/Secret/${name}/value`),
        param(`/sst/hoist/.fallback/Secret/${name}/value`),
      ]),
    });
    const paths = ssmReads(f.http, built.api).flatMap((s) => resourceList(s).map((r) => JSON.stringify(r)));
    expect(paths.every((p) => /\/sst\/hoist\/(test|\.fallback)\/Secret\/[A-Z_]+\/value/.test(p))).toBe(true);
  });
});

describe("IAM", () => {
  const scoped = ["dynamodb:", "sqs:", "kms:", "scheduler:", "execute-api:", "iam:", "lambda:", "ssm:"];

  it("never grants data-plane actions on Resource '*'", () => {
    for (const t of all()) {
      for (const [, p] of resources(t, "AWS::IAM::Policy")) {
        for (const s of policyStatements(p)) {
          if (!actions(s).some((a) => scoped.some((prefix) => a.startsWith(prefix)))) continue;
          for (const r of resourceList(s)) expect(r, JSON.stringify(s)).not.toBe("*");
          expect(actions(s).filter((a) => a.endsWith("*"))).toEqual([]);
        }
      }
    }
  });

  it("attaches no AWS-managed policy to the app's function roles", () => {
    for (const t of all()) {
      for (const [id, role] of resources(t, "AWS::IAM::Role")) {
        if (id.startsWith("CustomResourceHandler")) continue; // SST's own, suppressed with a reason
        expect(role.Properties.ManagedPolicyArns, id).toBeUndefined();
      }
    }
  });

  it("scopes each function to its own needs", () => {
    const http = statementsOf(built.api, lambda(built.api, "Http")[1]);
    const ws = statementsOf(built.realtime, lambda(built.realtime, "Ws")[1]);
    const worker = statementsOf(built.jobs, lambda(built.jobs, "DeployWorker")[1]);
    const autoStop = statementsOf(built.schedules, lambda(built.schedules, "AutoStop")[1]);
    const table = [
      "dynamodb:BatchGetItem",
      "dynamodb:BatchWriteItem",
      "dynamodb:ConditionCheckItem",
      "dynamodb:DeleteItem",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:Query",
      "dynamodb:UpdateItem",
    ];
    const schedules = ["scheduler:CreateSchedule", "scheduler:DeleteSchedule", "scheduler:UpdateSchedule"];
    for (const s of [http, ws, worker, autoStop]) expect(allowed(s, "dynamodb:")).toEqual(table);

    expect(allowed(http, "sqs:")).toEqual(["sqs:SendMessage"]);
    expect(allowed(http, "kms:")).toEqual(["kms:Decrypt", "kms:GenerateDataKey"]);
    expect(allowed(http, "scheduler:")).toEqual(schedules);
    expect(allowed(http, "iam:")).toEqual(["iam:PassRole"]);
    expect(allowed(http, "execute-api:")).toEqual(["execute-api:ManageConnections"]);

    expect(allowed(ws, "sqs:")).toEqual(["sqs:SendMessage"]);
    expect(allowed(ws, "kms:")).toEqual([]);
    expect(allowed(ws, "scheduler:")).toEqual([]);
    expect(allowed(ws, "execute-api:")).toEqual(["execute-api:ManageConnections"]);

    // The worker consumes through its event source mapping, and sends only to wake the next deployment;
    // it schedules a started app's auto-stop.
    expect(allowed(worker, "sqs:")).toContain("sqs:SendMessage");
    expect(allowed(worker, "kms:")).toEqual(["kms:Decrypt"]);
    expect(allowed(worker, "scheduler:")).toEqual(schedules);
    expect(allowed(worker, "iam:")).toEqual(["iam:PassRole"]);
    expect(allowed(worker, "execute-api:")).toEqual(["execute-api:ManageConnections"]);

    expect(allowed(autoStop, "sqs:")).toEqual(["sqs:SendMessage"]);
    expect(allowed(autoStop, "kms:")).toEqual(["kms:Decrypt"]);
    expect(allowed(autoStop, "scheduler:")).toEqual(schedules);
    expect(allowed(autoStop, "iam:")).toEqual(["iam:PassRole"]);
    expect(allowed(autoStop, "execute-api:")).toEqual(["execute-api:ManageConnections"]);

    for (const s of [http, ws, worker, autoStop]) {
      expect(allowed(s, "logs:")).toEqual(["logs:CreateLogStream", "logs:PutLogEvents"]);
    }
  });

  it("scopes resources: table + its indexes, the queue, the key, the group's schedules, the scheduler role", () => {
    const http = statementsOf(built.api, lambda(built.api, "Http")[1]);
    const worker = statementsOf(built.jobs, lambda(built.jobs, "DeployWorker")[1]);
    const find = (ss: Statement[], action: string) => ss.find((s) => actions(s).includes(action)) as Statement;
    const text = (s: Statement) => JSON.stringify(s.Resource);

    const dynamo = resourceList(find(http, "dynamodb:Query"));
    expect(dynamo).toHaveLength(2);
    expect(JSON.stringify(dynamo[1])).toContain("/index/*");
    expect(text(find(http, "sqs:SendMessage"))).toContain("DeployQueue");
    expect(text(find(http, "kms:GenerateDataKey"))).toContain("Key");
    expect(find(http, "scheduler:CreateSchedule").Resource).toEqual({
      "Fn::Join": [
        "",
        ["arn:", { Ref: "AWS::Partition" }, `:scheduler:${REGION}:${ACCOUNT}:schedule/test-hoist-schedules/*`],
      ],
    });
    const passRole = find(http, "iam:PassRole");
    expect(text(passRole)).toContain("SchedulingRole");
    expect(passRole.Condition).toEqual({ StringEquals: { "iam:PassedToService": "scheduler.amazonaws.com" } });
    expect(text(find(http, "execute-api:ManageConnections"))).toMatch(/\/test\/\*\/@connections\/\*/);

    // The ws function sends to the deploy queue (by its fixed name) and nothing else.
    const ws = statementsOf(built.realtime, lambda(built.realtime, "Ws")[1]);
    expect(resourceList(find(ws, "sqs:SendMessage"))).toHaveLength(1);
    expect(text(find(ws, "sqs:SendMessage"))).toContain(":test-hoist-deploy");

    // The worker consumes from the deploy queue only.
    const consume = find(worker, "sqs:ReceiveMessage");
    expect(resourceList(consume)).toHaveLength(1);
    expect(text(consume)).toContain("DeployQueue");
  });

  it("never allows Scan", () => {
    for (const t of all()) expect(JSON.stringify(t.toJSON())).not.toMatch(/dynamodb:(Scan|\*)/);
  });
});

describe("cdk-nag AwsSolutions", () => {
  // The messages of the one synthesis (what Annotations.fromStack would read).
  it("reports no unsuppressed errors (nor warnings)", () => {
    for (const stack of built.stacks) {
      const errors = built
        .messages(stack)
        .filter((m) => m.level !== "info" && /^AwsSolutions-/.test(String(m.entry.data)));
      expect(
        errors.map((m) => `${m.level} ${m.id}: ${String(m.entry.data).split("\n")[0]}`),
        stack.stackName,
      ).toEqual([]);
    }
  });

  it("suppresses only reviewed rules, per resource, each with its reason", () => {
    type Suppression = { id: string; reason: string };
    const byRule = new Map<string, string[]>();
    for (const t of all()) {
      const json = t.toJSON() as { Metadata?: { cdk_nag?: unknown }; Resources: Record<string, Resource> };
      expect(json.Metadata?.cdk_nag, "no stack-wide suppressions").toBeUndefined();
      for (const [id, r] of Object.entries(json.Resources)) {
        const rules = (r.Metadata as { cdk_nag?: { rules_to_suppress: Suppression[] } } | undefined)?.cdk_nag;
        for (const rule of rules?.rules_to_suppress ?? []) {
          expect(rule.reason.length, `${id} ${rule.id}`).toBeGreaterThan(40);
          byRule.set(rule.id, [...(byRule.get(rule.id) ?? []), id]);
        }
      }
    }
    expect([...byRule.keys()].sort()).toEqual([
      "AwsSolutions-APIG4",
      "AwsSolutions-IAM4",
      "AwsSolutions-IAM5",
      "AwsSolutions-L1",
    ]);
    // The AWS-managed policy is allowed only on SST's own custom-resource handler.
    for (const id of byRule.get("AwsSolutions-IAM4") ?? []) expect(id).toMatch(/^CustomResourceHandler/);
  });
});
