import { createSecretKey, type KeyObject, randomBytes } from "node:crypto";
import { link, mkdir, open, readFile, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { ConfigError } from "../../errors.ts";
import type { KeyVault } from "../../ports.ts";
import {
  canonicalContext,
  DATA_KEY_BYTES,
  gcmDecrypt,
  gcmEncrypt,
  MalformedEnvelopeError,
  openEnvelope,
  parseEnvelope,
  sealEnvelope,
} from "../envelope.ts";

const PROVIDER = "local";
const KEY_FILE = "master.key";
/** iv (12) ‖ encrypted data key (32) ‖ tag (16). */
const WRAPPED_KEY_BYTES = 12 + DATA_KEY_BYTES + 16;

/**
 * The embedded runtime's KeyVault: the envelope format of adapters/envelope.ts,
 * with each data key wrapped by AES-256-GCM under a 256-bit master key kept in
 * `<dataDir>/master.key` (raw bytes, mode 0600), the context as AAD — the role
 * KMS plays on AWS. Losing the file loses every secret; back it up with the data.
 */
export class FileKeyVault implements KeyVault {
  readonly #masterKey: KeyObject;

  private constructor(
    masterKey: KeyObject,
    readonly keyFile: string,
  ) {
    this.#masterKey = masterKey;
  }

  /** Reads the master key, creating it on first start; fails on a key file of the wrong size. */
  static async open(dataDir: string): Promise<FileKeyVault> {
    const keyFile = join(dataDir, KEY_FILE);
    const bytes = await readKeyFile(keyFile);
    try {
      if (bytes.length !== DATA_KEY_BYTES) {
        throw new ConfigError(
          `Master key file ${keyFile} is ${bytes.length} bytes, expected ${DATA_KEY_BYTES}: it is corrupt or not a Hoist key. ` +
            "Restore it from a backup; secrets encrypted under it cannot be read without it.",
        );
      }
      return new FileKeyVault(createSecretKey(bytes), keyFile);
    } finally {
      bytes.fill(0);
    }
  }

  async encrypt(plaintext: string, context: Record<string, string>): Promise<string> {
    const dataKey = randomBytes(DATA_KEY_BYTES);
    try {
      const wrapped = gcmEncrypt(this.#masterKey, dataKey, canonicalContext(context));
      const wrappedKey = Buffer.concat([wrapped.iv, wrapped.ciphertext]);
      return sealEnvelope({ provider: PROVIDER, dataKey, wrappedKey, plaintext, context });
    } finally {
      dataKey.fill(0);
    }
  }

  async decrypt(envelope: string, context: Record<string, string>): Promise<string> {
    const parsed = parseEnvelope(envelope, PROVIDER);
    const wrapped = parsed.wrappedKey;
    if (wrapped.length !== WRAPPED_KEY_BYTES) {
      throw new MalformedEnvelopeError("Malformed envelope: wrapped key has the wrong length");
    }
    const dataKey = gcmDecrypt(
      this.#masterKey,
      wrapped.subarray(0, 12),
      wrapped.subarray(12),
      canonicalContext(context),
    );
    try {
      return openEnvelope(parsed, dataKey, context);
    } finally {
      dataKey.fill(0);
    }
  }
}

/** A 32-byte random key kept 0600 at `keyFile`: read, or created once (atomically) on first use. */
export async function readKeyFile(keyFile: string): Promise<Buffer> {
  try {
    return await readFile(keyFile);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  await createKeyFile(keyFile);
  return readFile(keyFile);
}

/**
 * Writes a fresh key to a private temp file, syncs it, then hard-links it into
 * place: the link either creates the complete file or fails with EEXIST, so
 * racing starts agree on one key and nobody reads a half-written file.
 */
async function createKeyFile(keyFile: string): Promise<void> {
  const dir = dirname(keyFile);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = `${keyFile}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  const key = randomBytes(DATA_KEY_BYTES);
  try {
    const handle = await open(tmp, "wx", 0o600);
    try {
      await handle.writeFile(key);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await link(tmp, keyFile).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "EEXIST") throw err;
    });
    await syncDir(dir);
  } finally {
    key.fill(0);
    await rm(tmp, { force: true });
  }
}

/** Makes the new directory entry durable; best effort where directories cannot be opened (Windows). */
async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r").catch(() => undefined);
  if (!handle) return;
  await handle.sync().catch(() => undefined);
  await handle.close();
}
