import {
  DecryptCommand,
  GenerateDataKeyCommand,
  IncorrectKeyException,
  InvalidCiphertextException,
  KMSClient,
} from "@aws-sdk/client-kms";
import type { KeyVault } from "../../ports.ts";
import { DATA_KEY_BYTES, DecryptionError, openEnvelope, parseEnvelope, sealEnvelope } from "../envelope.ts";

const PROVIDER = "kms";

export interface KmsKeyVaultOptions {
  /** Key id, ARN or alias of the stage's symmetric KMS key. */
  keyId: string;
  client?: KMSClient;
}

/**
 * The AWS KeyVault: a fresh data key per secret from KMS GenerateDataKey, with
 * the context as KMS encryption context; the content is AES-256-GCM locally in
 * the shared envelope format (adapters/envelope.ts), which holds the
 * `CiphertextBlob`. The plaintext data key is zeroed as soon as it is used.
 */
export class KmsKeyVault implements KeyVault {
  private readonly keyId: string;
  private readonly client: KMSClient;

  constructor(opts: KmsKeyVaultOptions) {
    this.keyId = opts.keyId;
    this.client = opts.client ?? new KMSClient({});
  }

  async encrypt(plaintext: string, context: Record<string, string>): Promise<string> {
    const out = await this.client.send(
      new GenerateDataKeyCommand({ KeyId: this.keyId, KeySpec: "AES_256", EncryptionContext: context }),
    );
    const dataKey = out.Plaintext;
    try {
      if (dataKey?.length !== DATA_KEY_BYTES || !out.CiphertextBlob?.length) {
        throw new Error("KMS GenerateDataKey did not return a 256-bit data key");
      }
      return sealEnvelope({ provider: PROVIDER, dataKey, wrappedKey: out.CiphertextBlob, plaintext, context });
    } finally {
      dataKey?.fill(0);
    }
  }

  async decrypt(envelope: string, context: Record<string, string>): Promise<string> {
    const parsed = parseEnvelope(envelope, PROVIDER);
    const dataKey = await this.client
      .send(new DecryptCommand({ CiphertextBlob: parsed.wrappedKey, EncryptionContext: context, KeyId: this.keyId }))
      .then(
        (out) => out.Plaintext,
        (err: unknown) => {
          // Another context, a tampered blob, or a blob from another key.
          if (err instanceof InvalidCiphertextException || err instanceof IncorrectKeyException) {
            throw new DecryptionError(undefined, { cause: err });
          }
          throw err;
        },
      );
    try {
      if (dataKey?.length !== DATA_KEY_BYTES)
        throw new DecryptionError("KMS Decrypt did not return a 256-bit data key");
      return openEnvelope(parsed, dataKey, context);
    } finally {
      dataKey?.fill(0);
    }
  }
}
