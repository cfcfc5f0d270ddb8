import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KMSClient } from "@aws-sdk/client-kms";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canonicalContext, DecryptionError, formatEnvelope, parseEnvelope } from "../envelope.ts";
import { FileKeyVault } from "../local/file-key-vault.ts";
import { KmsKeyVault } from "./kms-key-vault.ts";

const KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

interface KmsCall {
  target: string;
  contentType: string | undefined;
  body: Record<string, unknown>;
}

/**
 * A loopback stand-in for KMS speaking its JSON 1.1 protocol: GenerateDataKey
 * hands out a random key and an opaque blob naming it; Decrypt gives the key back
 * only for the same encryption context (and key), as KMS does.
 */
function fakeKms() {
  const keys = new Map<string, { plaintext: Buffer; context: string; keyId: string }>();
  const calls: KmsCall[] = [];
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as Record<string, unknown>;
    const target = String(req.headers["x-amz-target"]);
    calls.push({ target, contentType: req.headers["content-type"], body });
    const reply = (status: number, payload: unknown) => {
      res.writeHead(status, { "content-type": "application/x-amz-json-1.1" });
      res.end(JSON.stringify(payload));
    };
    const context = canonicalContext((body.EncryptionContext ?? {}) as Record<string, string>);
    if (target === "TrentService.GenerateDataKey") {
      const blob = randomBytes(48);
      const plaintext = randomBytes(body.KeySpec === "AES_256" ? 32 : 16);
      keys.set(blob.toString("base64"), { plaintext, context, keyId: String(body.KeyId) });
      return reply(200, {
        KeyId: KEY_ARN,
        CiphertextBlob: blob.toString("base64"),
        Plaintext: plaintext.toString("base64"),
      });
    }
    if (target === "TrentService.Decrypt") {
      const entry = keys.get(String(body.CiphertextBlob));
      if (entry && body.KeyId !== undefined && body.KeyId !== entry.keyId) {
        return reply(400, {
          __type: "IncorrectKeyException",
          message: "The key ID in the request does not identify...",
        });
      }
      if (!entry || entry.context !== context) {
        return reply(400, { __type: "InvalidCiphertextException", message: "" });
      }
      return reply(200, {
        KeyId: KEY_ARN,
        Plaintext: entry.plaintext.toString("base64"),
        EncryptionAlgorithm: "SYMMETRIC_DEFAULT",
      });
    }
    return reply(400, { __type: "UnknownOperationException", message: target });
  });
  return { server, calls };
}

let kms: ReturnType<typeof fakeKms>;
let client: KMSClient;
let vault: KmsKeyVault;
const ctx = { ownerId: "usr_1" };

beforeAll(async () => {
  kms = fakeKms();
  await new Promise<void>((resolve) => kms.server.listen(0, "127.0.0.1", resolve));
  const { port } = kms.server.address() as AddressInfo;
  client = new KMSClient({
    endpoint: `http://127.0.0.1:${port}`,
    region: "us-east-1",
    credentials: { accessKeyId: "x", secretAccessKey: "y" },
    maxAttempts: 1,
  });
  vault = new KmsKeyVault({ keyId: "alias/hoist-test", client });
});
afterAll(async () => {
  client?.destroy();
  await new Promise((resolve) => (kms.server as Server).close(resolve));
});

describe("KmsKeyVault", () => {
  it("round-trips through GenerateDataKey and Decrypt, passing the key and context to KMS", async () => {
    kms.calls.length = 0;
    for (const value of ["s3cret", "pässwörd 🔑 秘密", "x".repeat(64 * 1024)]) {
      const envelope = await vault.encrypt(value, ctx);
      expect(await vault.decrypt(envelope, ctx)).toBe(value);
    }
    expect(kms.calls).toHaveLength(6);
    const [generate, decrypt] = kms.calls;
    expect(generate).toMatchObject({
      target: "TrentService.GenerateDataKey",
      contentType: "application/x-amz-json-1.1",
      body: { KeyId: "alias/hoist-test", KeySpec: "AES_256", EncryptionContext: ctx },
    });
    expect(decrypt).toMatchObject({
      target: "TrentService.Decrypt",
      body: { KeyId: "alias/hoist-test", EncryptionContext: ctx },
    });
    // The envelope carries KMS's CiphertextBlob as its wrapped key, nothing else of KMS's.
    const blob = Buffer.from(String(decrypt?.body.CiphertextBlob), "base64");
    expect(blob).toHaveLength(48);
  });

  it("writes a fresh data key for every encryption", async () => {
    const a = await vault.encrypt("same", ctx);
    const b = await vault.encrypt("same", ctx);
    expect(a).not.toBe(b);
    expect(parseEnvelope(a).wrappedKey.equals(parseEnvelope(b).wrappedKey)).toBe(false);
  });

  it("maps a context mismatch (InvalidCiphertextException) to DecryptionError", async () => {
    const envelope = await vault.encrypt("s3cret", ctx);
    const others: Record<string, string>[] = [{ ownerId: "usr_2" }, {}, { ownerId: "usr_1", extra: "x" }];
    for (const other of others) {
      const err = await vault.decrypt(envelope, other).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DecryptionError);
      expect((err as Error).message).not.toContain("s3cret");
    }
    // Same context in another key order is the same context.
    const multi = await vault.encrypt("s3cret", { ownerId: "usr_1", kind: "env" });
    expect(await vault.decrypt(multi, { kind: "env", ownerId: "usr_1" })).toBe("s3cret");
  });

  it("maps a blob from another key (IncorrectKeyException) to DecryptionError", async () => {
    const envelope = await new KmsKeyVault({ keyId: "alias/other", client }).encrypt("s3cret", ctx);
    await expect(vault.decrypt(envelope, ctx)).rejects.toBeInstanceOf(DecryptionError);
  });

  it("rejects tampered content, and a tampered blob via KMS", async () => {
    const envelope = parseEnvelope(await vault.encrypt("s3cret", ctx));
    for (const field of ["wrappedKey", "iv", "ciphertext"] as const) {
      const bytes = Buffer.from(envelope[field]);
      bytes[0] = (bytes[0] ?? 0) ^ 0x80;
      await expect(vault.decrypt(formatEnvelope({ ...envelope, [field]: bytes }), ctx)).rejects.toBeInstanceOf(
        DecryptionError,
      );
    }
  });

  it("does not let infrastructure errors pass as decryption failures", async () => {
    const unreachable = new KMSClient({
      endpoint: "http://127.0.0.1:1",
      region: "us-east-1",
      credentials: { accessKeyId: "x", secretAccessKey: "y" },
      maxAttempts: 1,
    });
    const envelope = await vault.encrypt("s3cret", ctx);
    const err = await new KmsKeyVault({ keyId: "alias/hoist-test", client: unreachable })
      .decrypt(envelope, ctx)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(DecryptionError);
    unreachable.destroy();
  });

  it("zeroes the plaintext data keys KMS returned once used", async () => {
    // Capture the deserialized outputs the vault receives from the SDK.
    const seen: Uint8Array[] = [];
    client.middlewareStack.add(
      (next) => async (args) => {
        const result = await next(args);
        const plaintext = (result.output as { Plaintext?: Uint8Array }).Plaintext;
        if (plaintext) seen.push(plaintext);
        return result;
      },
      { step: "initialize", name: "captureDataKey" },
    );
    try {
      const envelope = await vault.encrypt("s3cret", ctx);
      expect(await vault.decrypt(envelope, ctx)).toBe("s3cret");
    } finally {
      client.middlewareStack.remove("captureDataKey");
    }
    expect(seen).toHaveLength(2);
    for (const key of seen) expect(key.every((b) => b === 0)).toBe(true);
  });
});

describe("one envelope format for both vaults", () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "hoist-kms-"));
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  it("parses local and KMS envelopes with the same parser, and keeps each vault to its own", async () => {
    const local = await FileKeyVault.open(root);
    const fromLocal = await local.encrypt("s3cret", ctx);
    const fromKms = await vault.encrypt("s3cret", ctx);
    const shape = /^hv1\.[a-z0-9-]+\.[\w-]+\.[\w-]{16}\.[\w-]+$/;
    expect(fromLocal).toMatch(shape);
    expect(fromKms).toMatch(shape);
    const [l, k] = [parseEnvelope(fromLocal), parseEnvelope(fromKms)];
    expect([l.provider, k.provider]).toEqual(["local", "kms"]);
    expect([l.iv.length, k.iv.length]).toEqual([12, 12]);
    expect(formatEnvelope(l)).toBe(fromLocal);
    expect(formatEnvelope(k)).toBe(fromKms);

    await expect(local.decrypt(fromKms, ctx)).rejects.toThrow(/sealed by key provider "kms"/);
    await expect(vault.decrypt(fromLocal, ctx)).rejects.toThrow(/sealed by key provider "local"/);
    await expect(local.decrypt(fromKms, ctx)).rejects.toBeInstanceOf(DecryptionError);
  });
});
