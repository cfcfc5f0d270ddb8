import { type FunctionProps, Function as SSTFunction, type Stack } from "sst/constructs";
import { FunctionIdentity } from "../infra/function-identity.ts";
import { suppressRuntimeFinding, suppressSecretPrefetcher } from "../infra/nag.ts";
import { removalPolicyFor } from "../infra/stage.ts";

export interface HoistFunctionProps extends Omit<FunctionProps, "role" | "logGroup"> {
  /** What the function does; also describes its role. */
  description: string;
}

/**
 * An SST Function with its own least-privilege role and log group
 * (infra/function-identity.ts). Permissions are added by the stack that owns it.
 */
export function hoistFunction(stack: Stack, id: string, props: HoistFunctionProps): SSTFunction {
  const identity = new FunctionIdentity(stack, `${id}Identity`, {
    description: `Hoist ${stack.stage}: ${props.description}`,
    removalPolicy: removalPolicyFor(stack.stage),
  });
  const fn = new SSTFunction(stack, id, { ...props, role: identity.role, logGroup: identity.logGroup });
  suppressRuntimeFinding(fn);
  suppressSecretPrefetcher(fn);
  return fn;
}
