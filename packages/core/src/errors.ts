/**
 * One error hierarchy for everything a caller may see. Each error has a stable
 * `code` and an HTTP status; `http/problem.ts` maps them to problem JSON once.
 */
export interface FieldError {
  path: string;
  message: string;
}

export class HoistError extends Error {
  override name = "HoistError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: {
      errors?: FieldError[];
      headers?: Record<string, string>;
      /** Extension members of the problem JSON. */
      members?: Record<string, unknown>;
    } = {},
  ) {
    super(message);
  }
}

export class ValidationError extends HoistError {
  override name = "ValidationError";
  constructor(message: string, errors?: FieldError[]) {
    super(400, "validation", message, errors ? { errors } : {});
  }
}

export class UnauthorizedError extends HoistError {
  override name = "UnauthorizedError";
  constructor(message = "Authentication required") {
    super(401, "unauthorized", message, { headers: { "WWW-Authenticate": 'Bearer realm="hoist"' } });
  }
}

export class ForbiddenError extends HoistError {
  override name = "ForbiddenError";
  constructor(message = "You are not allowed to do this") {
    super(403, "forbidden", message);
  }
}

export class NotFoundError extends HoistError {
  override name = "NotFoundError";
  constructor(what = "Resource") {
    super(404, "not_found", `${what} not found`);
  }
}

export class ConflictError extends HoistError {
  override name = "ConflictError";
  constructor(message: string) {
    super(409, "conflict", message);
  }
}

/**
 * A plan's limit would be exceeded (issue: pay-per-use): 402, naming the
 * limit, the current use and the plan, also as problem members.
 */
export class PaymentRequiredError extends HoistError {
  override name = "PaymentRequiredError";
  constructor(limit: string, use: number, allowed: number, plan: string) {
    super(
      402,
      "limit_exceeded",
      `Your plan "${plan}" allows ${allowed} ${limit}; you use ${use}. Upgrade the plan or free some up`,
      { members: { limit, use, allowed, plan } },
    );
  }
}

export class LockedError extends HoistError {
  override name = "LockedError";
  constructor(message: string, retryAfterSeconds: number) {
    super(423, "locked", message, { headers: { "Retry-After": String(retryAfterSeconds) } });
  }
}

export class RateLimitedError extends HoistError {
  override name = "RateLimitedError";
  constructor(retryAfterSeconds: number, headers: Record<string, string> = {}) {
    super(429, "rate_limited", `Too many requests; retry in ${retryAfterSeconds} s`, {
      headers: { ...headers, "Retry-After": String(retryAfterSeconds) },
    });
  }
}

/** A feature this Hoist is not set up for (GitHub or OpenID Connect sign-in): 503 until its operator configures it. */
export class NotConfiguredError extends HoistError {
  override name = "NotConfiguredError";
  constructor(message: string) {
    super(503, "not_configured", message);
  }
}

/** A dependency Hoist needs (the queue, KMS, GitHub) failed; nothing was left half done. */
export class ServiceUnavailableError extends HoistError {
  override name = "ServiceUnavailableError";
  constructor(message: string) {
    super(503, "unavailable", message, { headers: { "Retry-After": "5" } });
  }
}

/** A store precondition did not hold (DynamoDB ConditionalCheckFailed, or a cancelled transaction). */
export class ConditionFailedError extends Error {
  override name = "ConditionFailedError";
  /** For a transaction: the indexes of the operations whose condition failed. */
  constructor(readonly failedIndexes: number[] = []) {
    super("Condition failed");
  }
}

/** Bad configuration: fails the process at start, naming the variable. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** What an unexpected error says, short enough to store and show (e.g. a deployment's `error`). */
export const errorMessage = (err: unknown, max = 500): string =>
  (err instanceof Error ? err.message : String(err)).slice(0, max);

/** For `.catch`: a failed store precondition means "someone else got there first" and is dropped; anything else is thrown. */
export function ignoreConditionFailed(err: unknown): undefined {
  if (!(err instanceof ConditionFailedError)) throw err;
  return undefined;
}
