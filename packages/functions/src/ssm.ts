/**
 * What secrets.ts needs of the SSM client, imported by name so that its
 * dynamic `import()` of this module keeps the rest of the client (every other
 * command and its models) out of the chunk.
 */
export { GetParametersCommand, SSMClient } from "@aws-sdk/client-ssm";
