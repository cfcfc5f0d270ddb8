import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError } from "../../errors.ts";
import {
  DecryptionError,
  type Envelope,
  formatEnvelope,
  MalformedEnvelopeError,
  parseEnvelope,
  sealEnvelope,
} from "../envelope.ts";
import { FileKeyVault } from "./file-key-vault.ts";

let root: string;
let vault: FileKeyVault;
const ctx = { ownerId: "usr_1" };

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "hoist-vault-"));
  vault = await FileKeyVault.open(join(root, "main"));
});
afterAll(() => rm(root, { recursive: true, force: true }));

const dir = (name: string) => join(root, name);

/** Flips one bit of one field of the envelope, keeping it well-formed. */
function tamper(envelope: string, field: keyof Omit<Envelope, "provider">, at = 0): string {
  const parsed = parseEnvelope(envelope);
  const bytes = Buffer.from(parsed[field]);
  bytes[at] = (bytes[at] ?? 0) ^ 0x01;
  return formatEnvelope({ ...parsed, [field]: bytes });
}

describe("FileKeyVault", () => {
  it("round-trips ascii, unicode, empty and 64 KB values", async () => {
    const values = ["s3cret", "", "pässwörd 🔑 — 秘密 \u0000 end", "x".repeat(64 * 1024)];
    for (const value of values) {
      const envelope = await vault.encrypt(value, ctx);
      expect(envelope).not.toContain(value || "\u0001");
      expect(await vault.decrypt(envelope, ctx)).toBe(value);
    }
  });

  it("writes the shared envelope format with a fresh data key and iv each time", async () => {
    const a = await vault.encrypt("same", ctx);
    const b = await vault.encrypt("same", ctx);
    expect(a).toMatch(/^hv1\.local\.[\w-]+\.[\w-]{16}\.[\w-]+$/);
    expect(a).not.toBe(b);
    const [pa, pb] = [parseEnvelope(a), parseEnvelope(b)];
    expect(pa.wrappedKey.equals(pb.wrappedKey)).toBe(false);
    expect(pa.iv.equals(pb.iv)).toBe(false);
  });

  it("binds the context: another owner, an extra key or an empty context fails", async () => {
    const envelope = await vault.encrypt("s3cret", { ownerId: "usr_1", kind: "env" });
    // Key order does not matter (canonical form).
    expect(await vault.decrypt(envelope, { kind: "env", ownerId: "usr_1" })).toBe("s3cret");
    const others: Record<string, string>[] = [
      { ownerId: "usr_2", kind: "env" },
      { ownerId: "usr_1" },
      {},
      { ownerId: "usr_1", kind: "ssh" },
    ];
    for (const other of others) {
      await expect(vault.decrypt(envelope, other)).rejects.toBeInstanceOf(DecryptionError);
    }
  });

  it("rejects a tampered wrapped key, iv, ciphertext or tag", async () => {
    const envelope = await vault.encrypt("s3cret", ctx);
    const last = parseEnvelope(envelope).ciphertext.length - 1;
    for (const bad of [
      tamper(envelope, "wrappedKey"),
      tamper(envelope, "wrappedKey", 30),
      tamper(envelope, "iv"),
      tamper(envelope, "ciphertext"),
      tamper(envelope, "ciphertext", last),
    ]) {
      const err = await vault.decrypt(bad, ctx).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DecryptionError);
      expect(err).not.toBeInstanceOf(MalformedEnvelopeError);
    }
  });

  it("rejects a relabelled provider and a content key swapped in from another envelope", async () => {
    const a = parseEnvelope(await vault.encrypt("one", ctx));
    const b = parseEnvelope(await vault.encrypt("two", ctx));
    await expect(vault.decrypt(formatEnvelope({ ...a, wrappedKey: b.wrappedKey }), ctx)).rejects.toBeInstanceOf(
      DecryptionError,
    );
    const kms = formatEnvelope({ ...a, provider: "kms" });
    await expect(vault.decrypt(kms, ctx)).rejects.toThrow(/sealed by key provider "kms"/);
  });

  it("rejects malformed envelopes clearly, without echoing them", async () => {
    const good = await vault.encrypt("s3cret", ctx);
    const [, , key, iv, ct] = good.split(".");
    const cases: [string, RegExp][] = [
      ["", /5 dot-separated parts/],
      ["sk_live_THIS_IS_A_SECRET", /5 dot-separated parts/],
      [`hv1.local.${key}.${iv}`, /5 dot-separated parts/],
      [`${good}.x`, /5 dot-separated parts/],
      [`hv2.local.${key}.${iv}.${ct}`, /version/],
      [`hv1.LOCAL.${key}.${iv}.${ct}`, /key provider/],
      [`hv1.local.${key}!.${iv}.${ct}`, /wrapped key is not base64url/],
      [`hv1.local.${key}.${iv}=.${ct}`, /iv is not base64url/],
      [`hv1.local.${key}.${iv}.`, /ciphertext is not base64url/],
      [`hv1.local.${key}.${iv?.slice(0, 8)}.${ct}`, /iv must be 96 bits/],
      [`hv1.local.${key}.${iv}.AAAA`, /ciphertext too short/],
      [`hv1.local.${key?.slice(0, 40)}.${iv}.${ct}`, /wrapped key has the wrong length/],
    ];
    for (const [input, message] of cases) {
      const err = await vault.decrypt(input, ctx).catch((e: unknown) => e);
      expect(err, input).toBeInstanceOf(MalformedEnvelopeError);
      expect((err as Error).message, input).toMatch(message);
      if (input) expect((err as Error).message).not.toContain(input);
    }
  });

  it("rejects non-canonical base64url (trailing bits) so a flipped character cannot go unnoticed", async () => {
    const good = await vault.encrypt("abcd", ctx);
    const [v, p, key, iv, ct] = good.split(".") as [string, string, string, string, string];
    // 20 bytes of ciphertext‖tag → 27 chars, the last carrying 2 unused bits.
    const last = ct.at(-1) ?? "";
    const sibling = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
      .split("")
      .find((c) => c !== last && Buffer.from(ct.slice(0, -1) + c, "base64url").equals(Buffer.from(ct, "base64url")));
    expect(sibling).toBeDefined();
    await expect(vault.decrypt([v, p, key, iv, ct.slice(0, -1) + sibling].join("."), ctx)).rejects.toBeInstanceOf(
      MalformedEnvelopeError,
    );
  });

  it("never puts the plaintext or keys in error messages", async () => {
    const envelope = await vault.encrypt("hunter2-secret", ctx);
    const err = (await vault.decrypt(envelope, { ownerId: "usr_2" }).catch((e: unknown) => e)) as Error;
    expect(err.message).not.toMatch(/hunter2/);
    expect(err.message).not.toContain(envelope.split(".")[2]);
  });

  it("opens envelopes sealed through the shared format by the same master key only", async () => {
    const other = await FileKeyVault.open(dir("other"));
    const envelope = await other.encrypt("s3cret", ctx);
    await expect(vault.decrypt(envelope, ctx)).rejects.toBeInstanceOf(DecryptionError);
    // A "local" envelope whose wrapped key is not a local wrapping fails as tampering, not as a crash.
    const fake = sealEnvelope({
      provider: "local",
      dataKey: Buffer.alloc(32, 7),
      wrappedKey: Buffer.alloc(60, 1),
      plaintext: "x",
      context: ctx,
    });
    await expect(vault.decrypt(fake, ctx)).rejects.toBeInstanceOf(DecryptionError);
  });
});

describe("FileKeyVault master key file", () => {
  it("is created with mode 0600 holding 256 bits, and reused after a restart", async () => {
    const dataDir = dir("restart");
    const first = await FileKeyVault.open(dataDir);
    expect(first.keyFile).toBe(join(dataDir, "master.key"));
    const info = await stat(first.keyFile);
    expect(info.mode & 0o777).toBe(0o600);
    expect(info.size).toBe(32);
    const before = await readFile(first.keyFile);
    const envelope = await first.encrypt("survives restarts", ctx);

    const second = await FileKeyVault.open(dataDir);
    expect(await second.decrypt(envelope, ctx)).toBe("survives restarts");
    expect((await readFile(second.keyFile)).equals(before)).toBe(true);
    // The key stays out of logs and serialisation.
    for (const shown of [inspect(second, { showHidden: true, depth: 5 }), JSON.stringify(second)]) {
      expect(shown).not.toContain(before.toString("hex"));
      expect(shown).not.toContain(before.toString("base64"));
    }
  });

  it("agrees on one key when several starts race to create it", async () => {
    const dataDir = dir("race");
    const vaults = await Promise.all(Array.from({ length: 8 }, () => FileKeyVault.open(dataDir)));
    const envelope = await vaults[0]?.encrypt("one key", ctx);
    for (const v of vaults) expect(await v.decrypt(envelope ?? "", ctx)).toBe("one key");
    expect(await readdir(dataDir)).toEqual(["master.key"]);
  });

  it("refuses a key file of the wrong size without overwriting it", async () => {
    const dataDir = dir("corrupt");
    await mkdir(dataDir);
    for (const content of [Buffer.alloc(0), Buffer.from("not-a-key\n"), Buffer.alloc(33, 1)]) {
      await writeFile(join(dataDir, "master.key"), content);
      const err = await FileKeyVault.open(dataDir).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toContain(`is ${content.length} bytes, expected 32`);
      expect((err as Error).message).not.toContain("not-a-key");
      expect((await readFile(join(dataDir, "master.key"))).equals(content)).toBe(true);
    }
  });
});
