import { Config, type StackContext } from "sst/constructs";
import { HoistKey } from "../infra/key.ts";
import { HoistTable } from "../infra/table.ts";

/** State: the single table, the envelope-encryption key, and the SST secrets. */
export function Data({ app, stack }: StackContext) {
  const { table } = new HoistTable(stack, "Table", { stage: app.stage });
  const { key } = new HoistKey(stack, "Key", {
    stage: app.stage,
    alias: `alias/${app.logicalPrefixedName("secrets")}`,
  });
  // Values are set with `sst secrets set <NAME> <value> --stage <stage>`; bound per function.
  const secrets = {
    jwtPrivateKey: new Config.Secret(stack, "JWT_PRIVATE_KEY"),
    githubClientSecret: new Config.Secret(stack, "GITHUB_CLIENT_SECRET"),
    githubWebhookSecret: new Config.Secret(stack, "GITHUB_WEBHOOK_SECRET"),
    // OpenID Connect sign-in, optional: set all three or none (the issuer and client id are not secret, but
    // kept here so that a stage is configured with one command and no redeploy).
    oidcIssuer: new Config.Secret(stack, "OIDC_ISSUER"),
    oidcClientId: new Config.Secret(stack, "OIDC_CLIENT_ID"),
    oidcClientSecret: new Config.Secret(stack, "OIDC_CLIENT_SECRET"),
  };
  stack.addOutputs({ TableName: table.tableName, KeyArn: key.keyArn });
  return { table, key, secrets };
}
