import { randomBytes } from "node:crypto";

export type IdPrefix =
  | "usr"
  | "srv"
  | "prj"
  | "app"
  | "dep"
  | "inc"
  | "aud"
  | "job"
  | "con"
  | "req"
  | "run"
  | "cmt"
  | "tok";

/** An opaque, URL-safe, unguessable id: the type prefix and 128 random bits. */
export function newId(prefix: IdPrefix): string {
  return `${prefix}_${randomBytes(16).toString("base64url")}`;
}

/** A random secret token (refresh tokens, receipts): 256 bits, base64url. */
export function newToken(): string {
  return randomBytes(32).toString("base64url");
}
