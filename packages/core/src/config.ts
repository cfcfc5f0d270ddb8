import { isIP } from "node:net";
import * as z from "zod/mini";
import { ConfigError } from "./errors.ts";
import { loadPlans, type Plans } from "./plans/plans.ts";
import "./zod-mini.ts";

/**
 * The one configuration module. Every setting is an environment variable with
 * a default (see README § Configuration); a bad value fails at start with a
 * message naming the variable. Written with zod/mini: the functions that
 * parse no HTTP input (the workers) then carry no classic zod.
 */
const int = (min: number, max?: number) =>
  z.coerce.number().check(z.int(), z.gte(min), ...(max === undefined ? [] : [z.lte(max)]));
const port = int(0, 65535);
const count = (min = 0, max?: number) => int(min, max);
const seconds = (max?: number) => int(1, max);
const url = z.url({ protocol: /^https?$/ });
const nonEmpty = z.string().check(z.minLength(1));
const splitList = z.transform((s: string) =>
  s
    .split(",")
    .map((c) => c.trim())
    .filter(Boolean),
);
/** Comma-separated CIDRs (`10.0.0.0/8, ::1/128`); a bare address is a /32 (or /128). */
const cidrList = z.pipe(
  z.pipe(z.string(), splitList),
  z.array(
    z.string().check(
      z.refine((c) => {
        const [address, bits, ...rest] = c.split("/");
        const family = isIP(address ?? "");
        const max = family === 4 ? 32 : 128;
        return family !== 0 && rest.length === 0 && (bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= max));
      }, "a comma-separated list of CIDRs, e.g. 10.0.0.0/8,fd00::/8"),
    ),
  ),
);

/** An OpenID Connect issuer: https without query or fragment (http only on loopback, for a local provider). */
const oidcIssuer = z.string().check(
  z.refine((s) => {
    if (!URL.canParse(s)) return false;
    const u = new URL(s);
    const loopback = ["localhost", "127.0.0.1", "[::1]"].includes(u.hostname);
    return (
      (u.protocol === "https:" || (u.protocol === "http:" && loopback)) && !u.search && !u.hash && !s.includes("#")
    );
  }, "an https URL without query or fragment (e.g. https://accounts.google.com)"),
);

const schema = z.object({
  PORT: z._default(port, 3000),
  HOIST_HOST: z._default(nonEmpty, "127.0.0.1"),
  HOIST_DATA_DIR: z._default(nonEmpty, ".hoist"),
  HOIST_TABLE_NAME: z._default(
    z.string().check(z.regex(/^[A-Za-z0-9_.-]{3,255}$/, "3-255 letters, digits, '_', '-' or '.'")),
    "hoist",
  ),
  HOIST_LOG_LEVEL: z._default(z.enum(["debug", "info", "warn", "error", "silent"]), "info"),
  HOIST_PUBLIC_URL: z.optional(url),
  HOIST_FRONTEND_URL: z.optional(url),
  HOIST_PUBLIC_WS_URL: z.optional(z.url({ protocol: /^wss?$/ })),
  HOIST_CORS_ORIGINS: z.pipe(z.pipe(z._default(z.string(), ""), splitList), z.array(z.union([z.literal("*"), url]))),
  HOIST_BODY_LIMIT_BYTES: z._default(count(1024), 256 * 1024),
  HOIST_RATE_LIMIT_AUTH: z._default(count(), 5),
  HOIST_RATE_LIMIT_API: z._default(count(), 100),
  HOIST_JWT_ISSUER: z._default(z.string().check(z.minLength(1), z.maxLength(200)), "hoist"),
  HOIST_ACCESS_TOKEN_TTL_SECONDS: z._default(seconds(86_400), 900),
  HOIST_REFRESH_TOKEN_TTL_SECONDS: z._default(seconds(), 30 * 86_400),
  HOIST_LOCKOUT_ATTEMPTS: z._default(count(1), 5),
  HOIST_LOCKOUT_SECONDS: z._default(seconds(), 900),
  HOIST_REFRESH_GRACE_SECONDS: z._default(count(0, 60), 10),
  HOIST_GITHUB_URL: z._default(url, "https://github.com"),
  HOIST_GITHUB_API_URL: z._default(url, "https://api.github.com"),
  HOIST_GITHUB_CLIENT_ID: z.optional(z.string()),
  HOIST_GITHUB_CLIENT_SECRET: z.optional(z.string()),
  HOIST_GITHUB_WEBHOOK_SECRET: z.optional(z.string()),
  HOIST_OIDC_ISSUER: z.optional(oidcIssuer),
  HOIST_OIDC_CLIENT_ID: z.optional(z.string().check(z.minLength(1), z.maxLength(500))),
  HOIST_OIDC_CLIENT_SECRET: z.optional(z.string().check(z.minLength(1), z.maxLength(2000))),
  HOIST_OIDC_NAME: z._default(z.string().check(z.minLength(1), z.maxLength(60)), "OpenID Connect"),
  HOIST_QUEUE_MAX_ATTEMPTS: z._default(count(1), 5),
  HOIST_QUEUE_VISIBILITY_SECONDS: z._default(seconds(), 960),
  HOIST_WS_IDLE_TIMEOUT_SECONDS: z._default(seconds(), 600),
  HOIST_WS_MAX_AGE_SECONDS: z._default(seconds(), 7200),
  HOIST_SSH_CONNECT_TIMEOUT_SECONDS: z._default(seconds(120), 10),
  HOIST_SSH_COMMAND_TIMEOUT_SECONDS: z._default(seconds(3600), 600),
  HOIST_STATUS_TIMEOUT_SECONDS: z._default(seconds(120), 15),
  HOIST_STATUS_SWEEP_SECONDS: z._default(count(), 300),
  HOIST_DEPLOY_TIMEOUT_SECONDS: z._default(seconds(3600), 840),
  HOIST_DEPLOY_LEASE_SECONDS: z._default(int(2, 600), 60),
  HOIST_DEPLOY_LOG_MAX_BYTES: z._default(count(64 * 1024), 16 * 1024 * 1024),
  HOIST_DEPLOY_LOG_RETENTION_DAYS: z._default(count(1, 3650), 30),
  HOIST_APP_LOG_SLICE_SECONDS: z._default(seconds(840), 600),
  HOIST_APP_LOG_IDLE_SECONDS: z._default(seconds(300), 15),
  HOIST_EXEC_TIMEOUT_SECONDS: z._default(seconds(840), 300),
  HOIST_EXEC_MAX_OUTPUT_BYTES: z._default(count(1024, 64 * 1024 * 1024), 1024 * 1024),
  HOIST_DYNAMODB_PORT: z._default(port, 0),
  HOIST_DYNAMODB_ENDPOINT: z.optional(url),
  HOIST_RATE_LIMIT_REFRESH: z._default(count(), 30),
  HOIST_RATE_LIMIT_WEBHOOK_FAILURES: z._default(count(), 20),
  HOIST_TRUSTED_PROXIES: z._default(cidrList, []),
  HOIST_SSH_DENY_NETWORKS: z.optional(cidrList),
  HOIST_SSH_ALLOW_NETWORKS: z._default(cidrList, []),
  HOIST_PLANS_FILE: z.optional(nonEmpty),
  /** Set by the stacks on AWS (the stage name); its presence tightens defaults meant for the cloud. */
  HOIST_STAGE: z.optional(nonEmpty),
});

/** Link-local (which holds 169.254.169.254, the EC2/GCP/Azure metadata address) and other clouds' metadata addresses. */
export const ALWAYS_DENIED_NETWORKS = ["169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32"];
/** On AWS, also loopback and private ranges: a Lambda must not become a port scanner of its VPC or itself. */
export const AWS_DENIED_NETWORKS = [
  "127.0.0.0/8",
  "::1/128",
  "0.0.0.0/8",
  "10.0.0.0/8",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "100.64.0.0/10",
  "fc00::/7",
];

export type Env = z.input<typeof schema>;

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  tableName: string;
  logLevel: "debug" | "info" | "warn" | "error" | "silent";
  publicUrl: string | undefined;
  frontendUrl: string | undefined;
  /** Where browsers open the WebSocket; unset: `/ws` on the page's own origin. */
  publicWsUrl: string | undefined;
  corsOrigins: string[];
  bodyLimitBytes: number;
  /** Requests per minute per client IP: sign-in and sign-up, token refreshes, the rest; failed webhook signatures. */
  rateLimit: { auth: number; api: number; refresh: number; webhookFailures: number };
  /** Proxies (CIDRs) whose `X-Forwarded-For` is believed; the client is the address before the first of them. */
  trustedProxies: string[];
  auth: {
    issuer: string;
    accessTokenTtlSeconds: number;
    refreshTokenTtlSeconds: number;
    lockoutAttempts: number;
    lockoutSeconds: number;
    /** A refresh token presented again this soon after it was spent gets the same successor (two tabs), not a revocation. */
    refreshGraceSeconds: number;
  };
  github: {
    url: string;
    apiUrl: string;
    clientId: string | undefined;
    clientSecret: string | undefined;
    webhookSecret: string | undefined;
  };
  /** OpenID Connect sign-in (HOIST_OIDC_*): all three set, or none (then undefined: the routes answer 503). */
  oidc: { issuer: string; clientId: string; clientSecret: string; name: string } | undefined;
  queue: { maxAttempts: number; visibilitySeconds: number };
  ws: { idleTimeoutSeconds: number; maxAgeSeconds: number };
  dynamodb: { port: number; endpoint: string | undefined };
  /** The plans (limits and prices) from HOIST_PLANS_FILE, or the default set (plans/default-plans.ts). */
  plans: Plans;
  deploy: { timeoutMs: number; leaseMs: number; logMaxBytes: number; logRetentionDays: number };
  /** Operating a running app (operate/): the app-log tail's slice and idle check, one-shot exec limits. */
  operate: { tailSliceMs: number; tailIdleMs: number; execTimeoutMs: number; execMaxOutputBytes: number };
  ssh: {
    connectTimeoutMs: number;
    commandTimeoutMs: number;
    statusTimeoutMs: number;
    sweepIntervalSeconds: number;
    /** Server addresses (resolved at connect time) Hoist refuses to connect to, unless `allowNetworks` has them. */
    denyNetworks: string[];
    allowNetworks: string[];
  };
}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // An empty variable means "use the default", as in most shells' `VAR= cmd`.
  const present = Object.fromEntries(Object.entries(env).filter(([k, v]) => k in schema.shape && v !== ""));
  const e = parseEnv(schema, present, "Invalid configuration");
  return {
    port: e.PORT,
    host: e.HOIST_HOST,
    dataDir: e.HOIST_DATA_DIR,
    tableName: e.HOIST_TABLE_NAME,
    logLevel: e.HOIST_LOG_LEVEL,
    publicUrl: e.HOIST_PUBLIC_URL,
    frontendUrl: e.HOIST_FRONTEND_URL,
    publicWsUrl: e.HOIST_PUBLIC_WS_URL,
    corsOrigins: e.HOIST_CORS_ORIGINS,
    bodyLimitBytes: e.HOIST_BODY_LIMIT_BYTES,
    rateLimit: {
      auth: e.HOIST_RATE_LIMIT_AUTH,
      api: e.HOIST_RATE_LIMIT_API,
      refresh: e.HOIST_RATE_LIMIT_REFRESH,
      webhookFailures: e.HOIST_RATE_LIMIT_WEBHOOK_FAILURES,
    },
    trustedProxies: e.HOIST_TRUSTED_PROXIES,
    auth: {
      issuer: e.HOIST_JWT_ISSUER,
      accessTokenTtlSeconds: e.HOIST_ACCESS_TOKEN_TTL_SECONDS,
      refreshTokenTtlSeconds: e.HOIST_REFRESH_TOKEN_TTL_SECONDS,
      lockoutAttempts: e.HOIST_LOCKOUT_ATTEMPTS,
      lockoutSeconds: e.HOIST_LOCKOUT_SECONDS,
      refreshGraceSeconds: e.HOIST_REFRESH_GRACE_SECONDS,
    },
    github: {
      url: e.HOIST_GITHUB_URL,
      apiUrl: e.HOIST_GITHUB_API_URL,
      clientId: e.HOIST_GITHUB_CLIENT_ID,
      clientSecret: e.HOIST_GITHUB_CLIENT_SECRET,
      webhookSecret: e.HOIST_GITHUB_WEBHOOK_SECRET,
    },
    oidc: oidcConfig(e),
    queue: { maxAttempts: e.HOIST_QUEUE_MAX_ATTEMPTS, visibilitySeconds: e.HOIST_QUEUE_VISIBILITY_SECONDS },
    ws: { idleTimeoutSeconds: e.HOIST_WS_IDLE_TIMEOUT_SECONDS, maxAgeSeconds: e.HOIST_WS_MAX_AGE_SECONDS },
    dynamodb: { port: e.HOIST_DYNAMODB_PORT, endpoint: e.HOIST_DYNAMODB_ENDPOINT },
    plans: loadPlans(e.HOIST_PLANS_FILE),
    deploy: {
      timeoutMs: e.HOIST_DEPLOY_TIMEOUT_SECONDS * 1000,
      leaseMs: e.HOIST_DEPLOY_LEASE_SECONDS * 1000,
      logMaxBytes: e.HOIST_DEPLOY_LOG_MAX_BYTES,
      logRetentionDays: e.HOIST_DEPLOY_LOG_RETENTION_DAYS,
    },
    operate: {
      tailSliceMs: e.HOIST_APP_LOG_SLICE_SECONDS * 1000,
      tailIdleMs: e.HOIST_APP_LOG_IDLE_SECONDS * 1000,
      execTimeoutMs: e.HOIST_EXEC_TIMEOUT_SECONDS * 1000,
      execMaxOutputBytes: e.HOIST_EXEC_MAX_OUTPUT_BYTES,
    },
    ssh: {
      connectTimeoutMs: e.HOIST_SSH_CONNECT_TIMEOUT_SECONDS * 1000,
      commandTimeoutMs: e.HOIST_SSH_COMMAND_TIMEOUT_SECONDS * 1000,
      statusTimeoutMs: e.HOIST_STATUS_TIMEOUT_SECONDS * 1000,
      sweepIntervalSeconds: e.HOIST_STATUS_SWEEP_SECONDS,
      denyNetworks: e.HOIST_SSH_DENY_NETWORKS ?? [
        ...ALWAYS_DENIED_NETWORKS,
        ...(e.HOIST_STAGE ? AWS_DENIED_NETWORKS : []),
      ],
      allowNetworks: e.HOIST_SSH_ALLOW_NETWORKS,
    },
  };
}

/** AWS resources a Lambda uses, set by the stacks (stacks/) as environment variables; each function gets only its own. */
const arn = z.string().check(z.startsWith("arn:"));
const awsSchema = {
  HOIST_STAGE: nonEmpty,
  HOIST_TABLE_NAME: z.string().check(z.minLength(3)),
  HOIST_QUEUE_URL: url,
  HOIST_KMS_KEY_ID: nonEmpty,
  HOIST_SCHEDULE_GROUP: nonEmpty,
  HOIST_SCHEDULER_ROLE_ARN: arn,
  HOIST_AUTO_STOP_FUNCTION_ARN: arn,
  HOIST_WS_ENDPOINT: url,
} as const;

export type AwsResourceName = keyof typeof awsSchema;

/** Reads one AWS resource variable; a missing or malformed one fails naming it. */
export function awsResource(name: AwsResourceName, env: Record<string, string | undefined> = process.env): string {
  return parseEnv(z.object({ [name]: awsSchema[name] }), env, "Missing AWS resource configuration")[name] as string;
}

/** The three OpenID Connect settings go together: some without the others is a mistake worth stopping for. */
function oidcConfig(e: z.output<typeof schema>): Config["oidc"] {
  const { HOIST_OIDC_ISSUER: issuer, HOIST_OIDC_CLIENT_ID: clientId, HOIST_OIDC_CLIENT_SECRET: clientSecret } = e;
  if (issuer && clientId && clientSecret) return { issuer, clientId, clientSecret, name: e.HOIST_OIDC_NAME };
  const missing = Object.entries({ issuer, clientId, clientSecret }).filter(([, v]) => !v);
  if (missing.length === 3) return undefined;
  const names = {
    issuer: "HOIST_OIDC_ISSUER",
    clientId: "HOIST_OIDC_CLIENT_ID",
    clientSecret: "HOIST_OIDC_CLIENT_SECRET",
  };
  const unset = missing.map(([k]) => names[k as keyof typeof names]);
  throw new ConfigError(
    `Invalid configuration:\n  OpenID Connect sign-in needs HOIST_OIDC_ISSUER, HOIST_OIDC_CLIENT_ID and HOIST_OIDC_CLIENT_SECRET together; ${unset.join(", ")} ${unset.length > 1 ? "are" : "is"} not set`,
  );
}

/** Parses the environment; the error names each bad variable. */
function parseEnv<S extends z.ZodMiniType>(schema: S, env: Record<string, unknown>, heading: string): z.output<S> {
  const parsed = schema.safeParse(env);
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
  throw new ConfigError(`${heading}:\n  ${lines.join("\n  ")}`);
}
