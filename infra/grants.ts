import { Stack } from "aws-cdk-lib";
import type { ITable } from "aws-cdk-lib/aws-dynamodb";
import { Grant, type IGrantable } from "aws-cdk-lib/aws-iam";
import type { IKey } from "aws-cdk-lib/aws-kms";
import type { IQueue } from "aws-cdk-lib/aws-sqs";
import { Config as SsmPaths } from "sst/config.js";
import type { Config } from "sst/constructs";
import { suppressScopedWildcard } from "./nag.ts";

/**
 * Item reads and writes, transactions (authorized per item as Put/Update/Delete/
 * ConditionCheck) and Query. No Scan: every access path is a key lookup or a
 * Query (docs/data-model.md).
 */
export const TABLE_ACTIONS = [
  "dynamodb:GetItem",
  "dynamodb:BatchGetItem",
  "dynamodb:Query",
  "dynamodb:PutItem",
  "dynamodb:UpdateItem",
  "dynamodb:DeleteItem",
  "dynamodb:BatchWriteItem",
  "dynamodb:ConditionCheckItem",
];

/** The table and its GSIs (`table/index/*`), nothing else. */
export function allowTableReadWrite(grantee: IGrantable, table: ITable): Grant {
  const grant = Grant.addToPrincipal({
    grantee,
    actions: TABLE_ACTIONS,
    resourceArns: [table.tableArn, `${table.tableArn}/index/*`],
  });
  suppressScopedWildcard(grantee, "tableIndexes");
  return grant;
}

/**
 * Reading SST secrets that are not bound (their values are fetched when first
 * needed): what binding grants, `ssm:GetParameters` on each one's stage
 * parameter and its app-wide fallback. SecureStrings under the account's
 * `aws/ssm` key need no KMS grant.
 */
export function allowReadSecrets(grantee: IGrantable, secrets: Config.Secret[]): Grant {
  const stack = Stack.of(secrets[0] as Config.Secret);
  const arn = (path: string) =>
    stack.formatArn({ service: "ssm", resource: "parameter", resourceName: path.replace(/^\//, "") });
  return Grant.addToPrincipal({
    grantee,
    actions: ["ssm:GetParameters"],
    resourceArns: secrets.flatMap((s) => [
      arn(SsmPaths.pathFor({ id: s.name, type: "Secret", prop: "value" })),
      arn(SsmPaths.pathFor({ id: s.name, type: "Secret", prop: "value", fallback: true })),
    ]),
  });
}

/** Envelope encryption (GenerateDataKey) and decryption with the stage's key. */
export function allowEncryptDecrypt(grantee: IGrantable, key: IKey): Grant {
  return Grant.addToPrincipal({
    grantee,
    actions: ["kms:GenerateDataKey", "kms:Decrypt"],
    resourceArns: [key.keyArn],
  });
}

/** Decryption only, for functions that read secrets but never store new ones. */
export function allowDecrypt(grantee: IGrantable, key: IKey): Grant {
  return Grant.addToPrincipal({ grantee, actions: ["kms:Decrypt"], resourceArns: [key.keyArn] });
}

/** Enqueue only; consuming is granted to the worker by its event source mapping. */
export function allowSendMessage(grantee: IGrantable, queue: IQueue | { queueArn: string }): Grant {
  return Grant.addToPrincipal({ grantee, actions: ["sqs:SendMessage"], resourceArns: [queue.queueArn] });
}
