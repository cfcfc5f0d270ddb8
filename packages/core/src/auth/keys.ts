import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type CryptoKey, exportJWK, generateKeyPair, importJWK, type JWK } from "jose";
import * as z from "zod/mini";
import "../zod-mini.ts";
import { ConfigError } from "../errors.ts";

/**
 * The JWT signing keys. The first key signs; every key verifies (by `kid`),
 * so a new key can be put first and the old one kept until its tokens expire.
 * Embedded: generated on first start into `<dataDir>/jwt-keys.json` (0600).
 * AWS: the SST secret `JWT_PRIVATE_KEY` holds the same JSON.
 */
export interface JwtKeySet {
  signing: { kid: string; key: CryptoKey };
  verifying: Map<string, CryptoKey>;
}

export const ALG = "EdDSA";

const KeyFile = z.object({
  keys: z
    .array(
      z.looseObject({
        kid: z.string().check(z.minLength(1)),
        kty: z.literal("OKP"),
        crv: z.literal("Ed25519"),
        x: z.string(),
        d: z.optional(z.string()),
      }),
    )
    .check(z.minLength(1)),
});

export async function generateKeySetJson(): Promise<string> {
  const { privateKey } = await generateKeyPair(ALG, { crv: "Ed25519", extractable: true });
  const jwk = await exportJWK(privateKey);
  return JSON.stringify({ keys: [{ ...jwk, kid: randomBytes(8).toString("hex"), alg: ALG, use: "sig" }] }, null, 2);
}

export async function parseKeySet(json: string, source: string): Promise<JwtKeySet> {
  let parsed: z.infer<typeof KeyFile>;
  try {
    parsed = KeyFile.parse(JSON.parse(json));
  } catch {
    throw new ConfigError(`${source}: not a JWT key set ({"keys":[Ed25519 JWK with kid, …]})`);
  }
  const [first, ...rest] = parsed.keys;
  if (!first?.d) throw new ConfigError(`${source}: the first key must be a private key (it signs)`);
  const publicOf = ({ d: _d, ...jwk }: JWK & { kid: string }) =>
    importJWK({ ...jwk, alg: ALG }, ALG) as Promise<CryptoKey>;
  const verifying = new Map<string, CryptoKey>();
  for (const jwk of [first, ...rest]) verifying.set(jwk.kid, await publicOf(jwk));
  return { signing: { kid: first.kid, key: (await importJWK({ ...first, alg: ALG }, ALG)) as CryptoKey }, verifying };
}

export async function fileKeySet(dataDir: string): Promise<JwtKeySet> {
  const path = join(dataDir, "jwt-keys.json");
  try {
    await writeFile(path, await generateKeySetJson(), { flag: "wx", mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  return parseKeySet(await readFile(path, "utf8"), path);
}
