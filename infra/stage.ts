import { RemovalPolicy } from "aws-cdk-lib";

/** The stage whose data outlives `sst remove`: its table and key are retained. */
export const PRODUCTION_STAGE = "prod";

/** RETAIN on the production stage, DESTROY on every other (dev, preview, test) stage. */
export function removalPolicyFor(stage: string): RemovalPolicy {
  return stage === PRODUCTION_STAGE ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
}
