import * as z from "zod/mini";
import type { JwtKeySet } from "./auth/keys.ts";
import type { Config } from "./config.ts";
import type { Logger } from "./logger.ts";
import type { Executor } from "./servers/ssh.ts";
import type { Store, TransactOp } from "./store/store.ts";
import type { UsageMeter } from "./usage/meter.ts";
import "./zod-mini.ts";

/**
 * The ports the domain talks to (DESIGN.md § Shape). Each has an AWS adapter
 * (adapters/aws) and a local one (adapters/local); the entrypoint picks once.
 */

/** A unit of background work, carried by SQS on AWS and by the table-backed queue embedded (zod/mini: no classic zod in the workers). */
const id = z.string().check(z.minLength(1), z.maxLength(64));
export const JobSchema = z.discriminatedUnion("type", [
  /** With its app named (`ownerId`, `appId`), the worker reads the app's next work alongside the deployment. */
  z.object({ type: z.literal("deploy"), deploymentId: id, ownerId: z.optional(id), appId: z.optional(id) }),
  z.object({ type: z.literal("app-start"), ownerId: id, appId: id, runId: id }),
  z.object({ type: z.literal("app-stop"), ownerId: id, appId: id, runId: id }),
  /** Look at what the app needs next; with `holder`, a watchdog for that holder of the app's lock. */
  z.object({ type: z.literal("app-wake"), ownerId: id, appId: id, holder: z.optional(id) }),
  /** Follow the app's container logs for one slice while `app-logs:<appId>` has subscribers (operate/tail.ts); `tailId` names the lease holder it runs as. */
  z.object({ type: z.literal("app-logs-tail"), ownerId: id, appId: id, tailId: id }),
  /** Run one exec the owner asked for over the WebSocket (operate/exec.ts). */
  /** With the app's `serverId`, the job reads the server alongside the app and its env. */
  z.object({ type: z.literal("exec"), ownerId: id, appId: id, execId: id, serverId: z.optional(id) }),
]);
export type Job = z.infer<typeof JobSchema>;

export interface JobQueue {
  send(job: Job, opts?: { delaySeconds?: number }): Promise<void>;
  /**
   * A queue kept in the table (embedded) can take a job inside the caller's
   * transaction: the write to add, then `committed()` once it committed or
   * `failed()` if it did not. Absent on SQS, where the caller sends after its
   * commit (and an outbox covers a failed send).
   */
  sendWith?(job: Job): { op: TransactOp; committed(): void; failed(): void };
}

/** What a one-time schedule delivers when it fires (to the auto-stop handler). */
export const ScheduledEventSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("auto-stop"), ownerId: id, appId: id, runId: id }),
  z.object({ type: z.literal("status-sweep") }),
]);
export type ScheduledEvent = z.infer<typeof ScheduledEventSchema>;

export interface Scheduler {
  /** Creates or moves the one-time schedule `name` to fire `event` at `at`. */
  schedule(name: string, at: Date, event: ScheduledEvent): Promise<void>;
  /** Cancels it; cancelling a schedule that already fired or never existed is fine. */
  cancel(name: string): Promise<void>;
}

export type PostResult = "sent" | "gone";

/** Pushes a message to one WebSocket connection (API Gateway's @connections API). */
export interface Broadcaster {
  post(connectionId: string, message: unknown): Promise<PostResult>;
  /** Closes the connection (API Gateway's DeleteConnection); one already gone is fine. */
  close(connectionId: string): Promise<void>;
}

/**
 * Envelope encryption of secrets. `context` (e.g. `{ ownerId }`) is bound to the
 * ciphertext: decrypting with another context fails.
 */
export interface KeyVault {
  encrypt(plaintext: string, context: Record<string, string>): Promise<string>;
  decrypt(envelope: string, context: Record<string, string>): Promise<string>;
}

/** Everything the domain needs, built once by the entrypoint (Lambda or embedded runtime). */
export interface Deps {
  config: Config;
  logger: Logger;
  store: Store;
  queue: JobQueue;
  /**
   * Long-running operator jobs (app-log tails, execs) where they must not take
   * the deploy queue's few slots: embedded, a queue of their own with many;
   * absent on AWS, where `queue` (one Lambda per message) serves them too.
   */
  operateQueue?: JobQueue;
  /** Aborted when the embedded runtime stops: long jobs (log tails, execs) end at once, cleanly, instead of being abandoned. */
  stopping?: AbortSignal;
  scheduler: Scheduler;
  broadcaster: Broadcaster;
  keyVault: KeyVault;
  /** Runs scripts on users' servers over SSH (the same ssh2 adapter in both runtimes). */
  executor: Executor;
  /**
   * Where the OpenID Connect provider's settings are secrets read on first use (on AWS, from SSM:
   * only sign-in with the provider needs them, so no cold start waits on them); absent, `config.oidc`.
   */
  readOidcSettings?: () => Promise<Config["oidc"]>;
  /** JWT signing and verification keys (a data-dir file embedded, an SST secret on AWS). */
  jwtKeys: JwtKeySet;
  /**
   * Counts authenticated requests off the request path and writes them in the
   * background: every second embedded (and on stop); on Lambda as soon as
   * counted, awaited by the http handler before it returns.
   */
  usage: UsageMeter;
  /** The clock of metering (usage/running.ts), injected by tests; the wall clock when absent. */
  now?: () => number;
  /**
   * Set only where this process is the one process working on its table (the
   * embedded runtime, holding its data directory's lock): leases and claims
   * recorded under another instance id were left by a process that died, and
   * are taken over at once instead of after their lease.
   */
  exclusiveInstanceId?: string;
}
