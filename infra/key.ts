import { Key } from "aws-cdk-lib/aws-kms";
import { Construct } from "constructs";
import { removalPolicyFor } from "./stage.ts";

export interface HoistKeyProps {
  stage: string;
  /** e.g. `alias/prod-hoist-secrets`; makes the key findable in the console. */
  alias: string;
}

/** The KMS key that wraps the data keys of SSH keys, OAuth tokens and env vars (envelope encryption). */
export class HoistKey extends Construct {
  readonly key: Key;

  constructor(scope: Construct, id: string, props: HoistKeyProps) {
    super(scope, id);
    this.key = new Key(this, "Key", {
      description: `Hoist ${props.stage}: envelope encryption of user secrets`,
      alias: props.alias,
      enableKeyRotation: true,
      removalPolicy: removalPolicyFor(props.stage),
    });
  }
}
