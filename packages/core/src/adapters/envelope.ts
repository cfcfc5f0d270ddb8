import { createCipheriv, createDecipheriv, type KeyObject, randomBytes } from "node:crypto";

/**
 * The one envelope format both KeyVault adapters write (DESIGN.md § Shape, KMS row):
 *
 *   hv1.<provider>.<wrappedKey>.<iv>.<ciphertext>
 *
 * - `provider`: which adapter wrapped the data key (`local`, `kms`); `[a-z0-9-]{1,16}`.
 * - `wrappedKey`: the per-envelope 256-bit data key, encrypted by the provider
 *   (KMS `CiphertextBlob`, or AES-256-GCM under the local master key).
 * - `iv`: 96-bit random nonce; `ciphertext`: AES-256-GCM output with the 128-bit tag appended.
 * - Every part is unpadded base64url; the only `.` are the four separators.
 *
 * The content is authenticated with AAD `hv1.<provider>.<canonical context>`, so
 * decrypting with another context (or relabelling the provider) fails. Errors
 * never echo the envelope, the plaintext or any key.
 */
export const ENVELOPE_VERSION = "hv1";
export const DATA_KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const PROVIDER = /^[a-z0-9-]{1,16}$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** A secret could not be decrypted: wrong context, tampered or foreign envelope, wrong key. */
export class DecryptionError extends Error {
  override name = "DecryptionError";
  constructor(
    message = "Secret could not be decrypted (wrong context, wrong key or tampered data)",
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The envelope is not `hv1.<provider>.<key>.<iv>.<ciphertext>`; a kind of DecryptionError. */
export class MalformedEnvelopeError extends DecryptionError {
  override name = "MalformedEnvelopeError";
}

export interface Envelope {
  provider: string;
  wrappedKey: Buffer;
  iv: Buffer;
  /** AES-256-GCM ciphertext followed by the 16-byte tag. */
  ciphertext: Buffer;
}

/** `{"a":"1","b":"2"}` with keys sorted by code unit, whatever order they were given in. */
export function canonicalContext(context: Record<string, string>): string {
  const entries = Object.entries(context).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [key, value] of entries) {
    if (typeof value !== "string") throw new TypeError(`Encryption context value for "${key}" must be a string`);
  }
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(",")}}`;
}

/** AES-256-GCM with a fresh 96-bit IV; returns the IV and ciphertext‖tag. */
export function gcmEncrypt(key: Uint8Array | KeyObject, plaintext: Uint8Array, aad: string) {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(aad, "utf8"));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return { iv, ciphertext };
}

/** Inverse of gcmEncrypt; any authentication failure is a DecryptionError. */
export function gcmDecrypt(key: Uint8Array | KeyObject, iv: Uint8Array, ciphertext: Buffer, aad: string): Buffer {
  if (iv.length !== IV_BYTES || ciphertext.length < TAG_BYTES) throw new DecryptionError("Ciphertext is truncated");
  const decipher = createDecipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES });
  decipher.setAAD(Buffer.from(aad, "utf8"));
  decipher.setAuthTag(ciphertext.subarray(ciphertext.length - TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(ciphertext.subarray(0, ciphertext.length - TAG_BYTES)), decipher.final()]);
  } catch (cause) {
    throw new DecryptionError(undefined, { cause });
  }
}

const contentAad = (provider: string, context: Record<string, string>) =>
  `${ENVELOPE_VERSION}.${provider}.${canonicalContext(context)}`;

/** Encrypts `plaintext` under `dataKey` and formats the envelope around the provider's `wrappedKey`. */
export function sealEnvelope(input: {
  provider: string;
  dataKey: Uint8Array;
  wrappedKey: Uint8Array;
  plaintext: string;
  context: Record<string, string>;
}): string {
  if (input.dataKey.length !== DATA_KEY_BYTES) throw new TypeError("Data key must be 256 bits");
  const bytes = Buffer.from(input.plaintext, "utf8");
  try {
    const { iv, ciphertext } = gcmEncrypt(input.dataKey, bytes, contentAad(input.provider, input.context));
    return formatEnvelope({ provider: input.provider, wrappedKey: Buffer.from(input.wrappedKey), iv, ciphertext });
  } finally {
    bytes.fill(0);
  }
}

/** Decrypts a parsed envelope's content with its (already unwrapped) data key. */
export function openEnvelope(envelope: Envelope, dataKey: Uint8Array, context: Record<string, string>): string {
  const bytes = gcmDecrypt(dataKey, envelope.iv, envelope.ciphertext, contentAad(envelope.provider, context));
  try {
    return bytes.toString("utf8");
  } finally {
    bytes.fill(0);
  }
}

export function formatEnvelope(e: Envelope): string {
  if (!PROVIDER.test(e.provider)) throw new TypeError("Key provider must match [a-z0-9-]{1,16}");
  return [ENVELOPE_VERSION, e.provider, e.wrappedKey, e.iv, e.ciphertext]
    .map((part) => (typeof part === "string" ? part : part.toString("base64url")))
    .join(".");
}

/**
 * Parses strictly (canonical base64url, exact IV length, room for the tag). With
 * `provider`, also rejects an envelope another provider wrapped.
 */
export function parseEnvelope(envelope: string, provider?: string): Envelope {
  if (typeof envelope !== "string") throw new MalformedEnvelopeError("Envelope must be a string");
  const parts = envelope.split(".");
  if (parts.length !== 5) throw new MalformedEnvelopeError(`Malformed envelope: expected 5 dot-separated parts`);
  const [version, name, wrappedKey, iv, ciphertext] = parts as [string, string, string, string, string];
  if (version !== ENVELOPE_VERSION) throw new MalformedEnvelopeError(`Unsupported envelope version`);
  if (!PROVIDER.test(name)) throw new MalformedEnvelopeError("Malformed envelope: bad key provider");
  if (provider !== undefined && name !== provider) {
    throw new DecryptionError(`Envelope was sealed by key provider "${name}", this vault is "${provider}"`);
  }
  const out: Envelope = {
    provider: name,
    wrappedKey: decodePart(wrappedKey, "wrapped key"),
    iv: decodePart(iv, "iv"),
    ciphertext: decodePart(ciphertext, "ciphertext"),
  };
  if (out.iv.length !== IV_BYTES) throw new MalformedEnvelopeError("Malformed envelope: iv must be 96 bits");
  if (out.ciphertext.length < TAG_BYTES) throw new MalformedEnvelopeError("Malformed envelope: ciphertext too short");
  return out;
}

function decodePart(part: string, what: string): Buffer {
  const bytes = BASE64URL.test(part) ? Buffer.from(part, "base64url") : undefined;
  if (!bytes || bytes.toString("base64url") !== part) {
    throw new MalformedEnvelopeError(`Malformed envelope: ${what} is not base64url`);
  }
  return bytes;
}
