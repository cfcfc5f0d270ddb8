import { KMSClient } from "@aws-sdk/client-kms";
import { KmsKeyVault } from "@hoist/core/adapters/aws/kms-key-vault";
import { awsResource } from "@hoist/core/config";

export const kmsKeyVault = () => new KmsKeyVault({ keyId: awsResource("HOIST_KMS_KEY_ID"), client: new KMSClient({}) });
