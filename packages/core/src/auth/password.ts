import { randomBytes, type ScryptOptions, scrypt, timingSafeEqual } from "node:crypto";
import { ValidationError } from "../errors.ts";

/**
 * Password hashing with Node's scrypt (memory-hard, no native build, runs on
 * Lambda). Parameters follow OWASP's scrypt guidance (N=2^15, r=8, p=3: 32 MiB,
 * tens of ms) and are stored with each hash, so they can be raised later and
 * old hashes upgraded at the next sign-in.
 */
export const SCRYPT = { N: 2 ** 15, r: 8, p: 3, keyLength: 32 } as const;

const derive = (password: string, salt: Buffer, p: { N: number; r: number; p: number }, keyLength: number) =>
  new Promise<Buffer>((resolve, reject) => {
    const options: ScryptOptions = { N: p.N, r: p.r, p: p.p, maxmem: 256 * p.N * p.r };
    scrypt(password.normalize("NFKC"), salt, keyLength, options, (err, key) => (err ? reject(err) : resolve(key)));
  });

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, SCRYPT, SCRYPT.keyLength);
  return ["scrypt", SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString("base64url"), key.toString("base64url")].join("$");
}

/** Constant-time comparison; a malformed stored hash never matches. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split("$");
  if (scheme !== "scrypt" || !salt || !hash) return false;
  const expected = Buffer.from(hash, "base64url");
  const actual = await derive(
    password,
    Buffer.from(salt, "base64url"),
    { N: Number(n), r: Number(r), p: Number(p) },
    expected.length,
  );
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

export function needsRehash(stored: string): boolean {
  return stored !== "" && !stored.startsWith(`scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$`);
}

/** A hash of nothing in particular: verified against when the account does not exist, so timing does not tell. */
let decoy: Promise<string> | undefined;
export const decoyHash = () => {
  decoy ??= hashPassword(randomBytes(16).toString("hex"));
  return decoy;
};

const common = new Set(
  [
    "password",
    "password1",
    "password123",
    "passw0rd",
    "123456789",
    "1234567890",
    "12345678910",
    "qwertyuiop",
    "iloveyou",
    "admin123",
    "administrator",
    "welcome123",
    "letmein123",
    "changeme",
    "changeme123",
    "trustno1",
    "sunshine1",
    "football1",
    "baseball1",
    "superman1",
    "abcdefghij",
    "abc1234567",
    "qwerty123",
    "1q2w3e4r5t",
    "zaq12wsx",
    "password12",
    "monkey1234",
    "dragon1234",
    "master1234",
    "hoisthoist",
  ].map((p) => p.toLowerCase()),
);

/** NIST 800-63B style: length over composition, no well-known passwords, nothing built from the account's names. */
export function checkPasswordPolicy(password: string, account: { username?: string; email?: string }): void {
  const problems: string[] = [];
  const length = [...password].length;
  if (length < 10) problems.push("must be at least 10 characters");
  if (length > 128) problems.push("must be at most 128 characters");
  const lower = password.toLowerCase();
  if (common.has(lower)) problems.push("is a commonly used password");
  if (new Set(password).size < 4) problems.push("must not repeat a few characters");
  const names = [account.username, account.email?.split("@")[0]].filter((n): n is string => !!n && n.length >= 3);
  if (names.some((n) => lower.includes(n.toLowerCase()))) problems.push("must not contain the username or email");
  if (problems.length > 0) {
    throw new ValidationError(
      "Password is too weak",
      problems.map((message) => ({ path: "body.password", message: `Password ${message}` })),
    );
  }
}
