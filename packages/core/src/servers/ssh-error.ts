import { HoistError } from "../errors.ts";

export type SshErrorKind =
  | "dns"
  | "denied"
  | "refused"
  | "unreachable"
  | "timeout"
  | "auth"
  | "host-key"
  | "command-timeout"
  | "aborted"
  | "protocol";

/** What failed talking to a server; the message is for the user and never holds a credential. */
export class SshError extends HoistError {
  override name = "SshError";
  constructor(
    readonly kind: SshErrorKind,
    message: string,
    /** The server's host key, when the handshake got that far. */
    readonly hostKeyFingerprint: string | null = null,
  ) {
    super(SSH_ERROR_STATUS[kind] ?? 502, `ssh_${kind.replace("-", "_")}`, message);
  }
}

/** Most failures are the server's (502); running out of time is a 504; a refused address is Hoist's policy (403). */
const SSH_ERROR_STATUS: Partial<Record<SshErrorKind, number>> = { timeout: 504, "command-timeout": 504, denied: 403 };

export const DNS_CODES = new Set(["ENOTFOUND", "EAI_AGAIN", "EAI_NONAME", "EAI_FAIL", "EAI_NODATA"]);
const UNREACHABLE_CODES = new Set(["EHOSTUNREACH", "ENETUNREACH", "EHOSTDOWN", "ENETDOWN"]);

/** Where an ssh2 error happened, to say it to the user. */
export interface SshErrorContext {
  host: string;
  port: number;
  username: string;
  /** The pinned host key, if any. */
  pinned: string | null;
  /** What the connection was waiting for (`waiting for authentication`, `running the command`). */
  waiting: string;
  /** The server's host key, once the handshake showed it. */
  fingerprint: string | null;
  /** Whether the host key did not match the pin. */
  mismatch: boolean;
  /** The authentication methods offered (`private key`, `password`). */
  tried: string[];
}

/** An ssh2 client error (its `level` and `code`) as an {@link SshError}. */
export function toSshError(err: Error & { level?: string; code?: string }, ctx: SshErrorContext): SshError {
  const { host, fingerprint, waiting } = ctx;
  const where = `${host}:${ctx.port}`;
  if (ctx.mismatch && fingerprint) {
    return new SshError(
      "host-key",
      `Host key mismatch for ${where}: expected ${ctx.pinned}, got ${fingerprint}. ` +
        "If the server was reinstalled, clear the pinned key to accept the new one.",
      fingerprint,
    );
  }
  const code = err.code ?? "";
  if (DNS_CODES.has(code) || err.level === "client-dns") return new SshError("dns", `DNS lookup failed for ${host}`);
  if (code === "ECONNREFUSED") return new SshError("refused", `Connection refused by ${where}`);
  if (UNREACHABLE_CODES.has(code)) return new SshError("unreachable", `${where} is unreachable (${code})`);
  if (code === "ETIMEDOUT")
    return new SshError("timeout", `Timed out connecting to ${where} (${waiting})`, fingerprint);
  if (err.level === "client-authentication") {
    return new SshError(
      "auth",
      `Authentication failed for user ${ctx.username} on ${where} (tried: ${ctx.tried.join(", ") || "none"})`,
      fingerprint,
    );
  }
  if (err.level === "client-timeout")
    return new SshError("timeout", `Lost the connection to ${where}: keepalives went unanswered`, fingerprint);
  if (code === "ECONNRESET" || code === "EPIPE")
    return new SshError("protocol", `The connection to ${where} was reset (${waiting})`, fingerprint);
  return new SshError("protocol", `SSH error with ${where}: ${err.message}`, fingerprint);
}
