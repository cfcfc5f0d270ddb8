import { type AppItem, appKey } from "../apps/entity.ts";
import { readEnv } from "../apps/env.ts";
import { masker } from "../apps/mask.ts";
import { runAppCommand } from "../apps/remote.ts";
import { errorMessage } from "../errors.ts";
import { newToken } from "../ids.ts";
import type { Deps, Job } from "../ports.ts";
import { publish, subscribers } from "../realtime/publish.ts";
import { type ServerItem, serverKey } from "../servers/entity.ts";
import { AppLogPublisher } from "./app-log-publisher.ts";
import { composeLogsCommand, lastErrors, parseComposeLine } from "./compose-logs.ts";
import { appLogsChannel, type TailCursor } from "./entity.ts";
import { claimTail, handOverTail, operateQueue, releaseTail, renewTail, takeBackTail } from "./tail-lease.ts";
import { TailSeam } from "./tail-seam.ts";

/**
 * `app-logs-tail`: follows the app's container logs (`docker compose logs
 * --follow` in its cdPath, over SSH) and publishes them to `app-logs:<appId>`
 * while the channel has subscribers, for one bounded slice
 * (`HOIST_APP_LOG_SLICE_SECONDS`, under the worker Lambda's 900 s).
 *
 * - Idle check, every `HOIST_APP_LOG_IDLE_SECONDS`: no subscriber left → the
 *   lease is released and the tail ends; else the lease is renewed with the
 *   cursor so far (a run that dies is resumed from it by the status sweep:
 *   tail-lease.ts `restartLapsedTails`; lines of its last interval may come twice).
 * - Slice end: the tail stops taking lines, publishes what it took, hands the
 *   lease (with the cursor: tail-seam.ts) to the next slice's job, sends that
 *   job, and stops its command. The next job re-reads from a little before
 *   the cursor and skips what was published: no gap, no duplicate.
 * - A command that ends by itself (containers stopped, SSH lost) is followed
 *   again from the cursor after an idle interval; its error is published once.
 */

type StopReason = "slice" | "idle" | "lost" | "stopping";

export type AppLogErrorMessage = { type: "app-log-error"; appId: string; message: string };

export async function appLogsTailJob(job: Extract<Job, { type: "app-logs-tail" }>, deps: Deps): Promise<void> {
  const runner = newToken();
  const lease = await claimTail(deps, job.appId, job.tailId, runner);
  if (!lease) return; // another tail holds it, or this one already ran (a duplicate delivery)
  const app = await deps.store.get<AppItem>(appKey(job.ownerId, job.appId), { consistent: true });
  const server = app && (await deps.store.get<ServerItem>(serverKey(app.ownerId, app.serverId)));
  if (!app || !server) {
    await releaseTail(deps, job.appId, runner);
    return;
  }
  await new TailRun(deps, app, server, runner, lease.cursor).run();
}

class TailRun {
  private readonly publisher: AppLogPublisher;
  private readonly channel: string;
  private reason: StopReason | undefined;
  private command: AbortController | undefined;
  private wake: (() => void) | undefined;
  private errorShown = false;
  private seam: TailSeam;

  constructor(
    private readonly deps: Deps,
    private readonly app: AppItem,
    private readonly server: ServerItem,
    private readonly runner: string,
    cursor: TailCursor,
  ) {
    this.publisher = new AppLogPublisher(deps, app.id);
    this.channel = appLogsChannel(app.id);
    this.seam = new TailSeam(cursor);
  }

  async run(): Promise<void> {
    const { tailSliceMs, tailIdleMs } = this.deps.config.operate;
    const sliceTimer = setTimeout(() => this.stop("slice"), tailSliceMs);
    let checking: Promise<void> | undefined;
    const idleTimer = setInterval(() => {
      checking ??= this.check().finally(() => {
        checking = undefined;
      });
    }, tailIdleMs);
    const onStopping = () => this.stop("stopping");
    this.deps.stopping?.addEventListener("abort", onStopping, { once: true });
    if (this.deps.stopping?.aborted) this.stop("stopping");
    try {
      const env = await readEnv(this.deps, this.app.ownerId, this.app.id);
      const mask = masker(Object.values(env));
      while (!this.reason) {
        await this.follow(env, mask);
        // Ended by itself: follow again from the cursor after an idle interval (unless told to stop meanwhile).
        if (!this.reason) await new Promise<void>((resolve) => this.pause(resolve, tailIdleMs));
      }
    } catch (err) {
      this.deps.logger.error("app log tail failed", { appId: this.app.id, error: err });
      this.stop("stopping");
    } finally {
      clearTimeout(sliceTimer);
      clearInterval(idleTimer);
      this.deps.stopping?.removeEventListener("abort", onStopping);
      await checking;
    }
    await this.publisher.flush();
    await this.end(this.reason ?? "stopping");
  }

  /** One `docker compose logs --follow`, from the seam's cursor, until it ends or is stopped. */
  private async follow(env: Record<string, string>, mask: (line: string) => string): Promise<void> {
    const seam = new TailSeam(this.seam.cursor());
    this.seam = seam;
    const command = new AbortController();
    this.command = command;
    try {
      const result = await runAppCommand(
        this.deps,
        this.app,
        this.server,
        composeLogsCommand({ follow: true, since: seam.cursor().since }),
        {
          env,
          writeDotenv: false,
          // The slice ends it; this is only a backstop.
          timeoutMs: this.deps.config.operate.tailSliceMs + 60_000,
          signal: command.signal,
          flow: this.publisher,
          onLine: (stream, raw) => {
            if (this.reason) return; // stopped: whatever comes now is the next slice's to read
            if (stream === "stderr") return; // its last lines are in the result (stderrTail)
            const parsed = parseComposeLine(raw);
            if (!parsed) return;
            const line = mask(parsed.line);
            if (seam.admit(parsed.service, parsed.time, line)) this.publisher.push({ ...parsed, line });
          },
        },
      );
      if (!this.reason && result.exitCode !== 0 && result.exitCode !== null)
        await this.showError(
          `docker compose logs exited with ${result.exitCode}: ${lastErrors(result.stderrTail, mask)}`,
        );
    } catch (err) {
      if (!this.reason) await this.showError(`Following the app's logs failed: ${errorMessage(err)}`);
    } finally {
      this.command = undefined;
    }
  }

  private stop(reason: StopReason): void {
    this.reason ??= reason;
    this.command?.abort();
    this.wake?.();
  }

  private pause(resolve: () => void, ms: number): void {
    const timer = setTimeout(done, ms);
    const self = this;
    function done() {
      clearTimeout(timer);
      self.wake = undefined;
      resolve();
    }
    this.wake = done;
  }

  /** The idle check: subscribers left → renew the lease; none → release it and stop. */
  private async check(): Promise<void> {
    if (this.reason) return;
    try {
      const since = Date.now();
      if ((await subscribers(this.deps, this.channel)).length === 0) {
        await this.publisher.hold();
        if (await releaseTail(this.deps, this.app.id, this.runner, since)) {
          this.publisher.discard();
          this.stop("idle");
          return;
        }
        this.publisher.resume(); // a subscriber came meanwhile (or the lease moved on: the renewal says)
      }
      if (!(await renewTail(this.deps, this.app.id, this.runner, this.seam.cursor()))) this.stop("lost");
    } catch (err) {
      // The lease lapses if this keeps failing; the next check tries again.
      this.deps.logger.warn("app log tail check failed", { appId: this.app.id, error: err });
    }
  }

  private async showError(message: string): Promise<void> {
    if (this.errorShown) return;
    this.errorShown = true;
    const m: AppLogErrorMessage = { type: "app-log-error", appId: this.app.id, message: message.slice(0, 2000) };
    await publish(this.deps, this.channel, [m]).catch(() => undefined);
  }

  private async end(reason: StopReason): Promise<void> {
    const { deps, app, runner } = this;
    if (reason === "stopping") await releaseTail(deps, app.id, runner).catch(() => undefined);
    if (reason !== "slice") return;
    // The next slice runs only while someone listens (also when a slice is shorter than the idle interval).
    const since = Date.now();
    if ((await subscribers(deps, this.channel)).length === 0 && (await releaseTail(deps, app.id, runner, since)))
      return;
    const next = newToken();
    if (!(await handOverTail(deps, app.id, runner, next, this.seam.cursor()))) return;
    try {
      await operateQueue(deps).send({ type: "app-logs-tail", ownerId: app.ownerId, appId: app.id, tailId: next });
    } catch (err) {
      deps.logger.error("could not hand the app log tail over; the next subscribe restarts it", {
        appId: app.id,
        error: err,
      });
      if (await takeBackTail(deps, app.id, next, runner)) await releaseTail(deps, app.id, runner);
    }
  }
}
