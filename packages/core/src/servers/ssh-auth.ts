import ssh2, { type AuthMethod, type ParsedKey, type PasswordAuthMethod, type PublicKeyAuthMethod } from "ssh2";
import { SshError } from "./ssh-error.ts";

/** The credentials of an SSH target, as ssh2 takes them. */
export interface Credentials {
  username: string;
  /** Parsed with {@link loadPrivateKey}. */
  privateKey: ParsedKey | undefined;
  password: string | undefined;
}

/** Explicit methods: key, then password (no "none" probe); the parsed key is used as is, not decrypted again. */
export function authMethods({ username, privateKey, password }: Credentials): AuthMethod[] {
  const methods: (PublicKeyAuthMethod | PasswordAuthMethod)[] = [];
  if (privateKey) methods.push({ type: "publickey", username, key: privateKey });
  if (password !== undefined) methods.push({ type: "password", username, password });
  return methods;
}

/** What authentication offers, for an error message (`private key`, `password`). */
export function triedMethods({ privateKey, password }: Credentials): string[] {
  return [privateKey && "private key", password !== undefined && "password"].filter((m) => typeof m === "string");
}

/** Parses the key up front so a bad key or passphrase fails clearly, before any connection. */
export function loadPrivateKey(key: string, passphrase: string | undefined): ParsedKey {
  const parsed: ParsedKey | ParsedKey[] | Error = ssh2.utils.parseKey(key, passphrase || undefined);
  if (parsed instanceof Error) {
    const message = parsed.message;
    if (/no passphrase given/i.test(message))
      throw new SshError("auth", "The private key is encrypted: a passphrase is needed");
    if (passphrase && /passphrase|decrypt/i.test(message))
      throw new SshError("auth", "Wrong passphrase for the private key");
    throw new SshError("auth", `The private key could not be read (${message})`);
  }
  const first = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!first || first.getPrivatePEM() === null)
    throw new SshError("auth", "The private key could not be read (it holds no private key; is it a public key?)");
  return first;
}
