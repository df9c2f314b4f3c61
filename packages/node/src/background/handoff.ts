// Hinted handoff: a background worker that replays the hints this node holds to their
// targets. A hint is deleted only after its target acknowledged it; a target that fails is
// backed off (exponentially, per target) so a dead node costs little; a node reported up
// gets its hints at once. The worker runs beside client traffic and never blocks it.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Hint, HintStore } from "@dynamo-ts/hintstore";
import type { Logger } from "../observability/log.js";
import type { Metrics } from "../observability/metrics.js";
import { isHintStoreFailure } from "../local/store-health.js";

export interface BackoffOptions {
  readonly baseMs: number;
  readonly maxMs: number;
}

/** Per-target retry schedule. Pure: time is passed in. */
export class BackoffSchedule {
  private readonly state = new Map<string, { failures: number; nextAt: number }>();

  constructor(private readonly options: BackoffOptions) {}

  isDue(target: string, now: number): boolean {
    const s = this.state.get(target);
    return !s || now >= s.nextAt;
  }

  failure(target: string, now: number): number {
    const failures = (this.state.get(target)?.failures ?? 0) + 1;
    const delay = Math.min(this.options.maxMs, this.options.baseMs * 2 ** Math.min(failures - 1, 20));
    this.state.set(target, { failures, nextAt: now + delay });
    return delay;
  }

  success(target: string): void {
    this.state.delete(target);
  }

  /** A target known to be back: try it now, without forgetting how often it failed. */
  reset(target: string): void {
    const s = this.state.get(target);
    if (s) s.nextAt = 0;
  }

  failures(target: string): number {
    return this.state.get(target)?.failures ?? 0;
  }

  nextAttemptIn(target: string, now: number): number {
    const s = this.state.get(target);
    return s ? Math.max(0, s.nextAt - now) : 0;
  }
}

/** The target answered, and said no for good: the record is invalid or too large for it. */
function isRejection(result: PromiseSettledResult<void>): boolean {
  if (result.status !== "rejected") return false;
  const code = ConnectError.from(result.reason).code;
  return code === Code.InvalidArgument || code === Code.ResourceExhausted;
}

export interface HandoffOptions {
  /** How often pending hints are looked at. */
  readonly intervalMs: number;
  /** Hints sent to one target at a time. */
  readonly batchSize: number;
  /** Record bytes listed for one batch: delivery holds about this much in memory per target. */
  readonly batchBytes: number;
  /** Told when a round fails because the hint store can't write (acks, expiry). */
  readonly onHintStoreFailure?: (err: unknown) => void;
  readonly backoff: BackoffOptions;
}

export class HintDelivery {
  readonly schedule: BackoffSchedule;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private started = false;

  constructor(
    private readonly hints: HintStore,
    /** Sends one hint's record to its target as a plain replica write; rejects on failure. */
    private readonly deliver: (hint: Hint) => Promise<void>,
    private readonly options: HandoffOptions,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.schedule = new BackoffSchedule(options.backoff);
  }

  start(): void {
    this.started = true;
    this.schedule_(this.options.intervalMs);
  }

  private schedule_(delayMs: number): void {
    // Nothing runs before start(): with handoff disabled, "node is back" events do nothing.
    if (this.stopped || !this.started) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.runRound(), delayMs);
    this.timer.unref();
  }

  /** Deliver now: called when a node is seen up again (`target`) or by an operator. */
  trigger(target?: string): void {
    if (target) this.schedule.reset(target);
    this.schedule_(0);
  }

  /** Runs one delivery round (or joins the one running); resolves when it is done. */
  runRound(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.round();
        } while (this.again && !this.stopped);
      } catch (err) {
        if (isHintStoreFailure(err)) this.options.onHintStoreFailure?.(err);
        this.log.error("hint delivery round failed", { error: String(err) });
      } finally {
        this.running = undefined;
        this.schedule_(this.options.intervalMs);
      }
    })();
    return this.running;
  }

  private async round(): Promise<void> {
    const expired = await this.hints.expire();
    if (expired > 0) {
      this.metrics.count("hints_expired", expired);
      this.log.warn("hints expired before delivery; anti-entropy will repair their keys", { expired });
    }
    const due = this.hints.targets().filter((t) => this.schedule.isDue(t.target, this.now()));
    await Promise.all(due.map((t) => this.deliverTo(t.target)));
  }

  private async deliverTo(target: string): Promise<void> {
    while (!this.stopped) {
      const batch = await this.hints.list(target, this.options.batchSize, this.options.batchBytes);
      if (batch.length === 0) return;
      const results = await Promise.allSettled(batch.map((hint) => this.deliver(hint)));
      const delivered = batch.filter((_, i) => results[i]!.status === "fulfilled");
      // A hint the target refuses as invalid would be refused forever: dropped, counted, logged.
      const rejected = batch.filter((_, i) => isRejection(results[i]!));
      if (delivered.length > 0) {
        await this.hints.ack(delivered);
        this.metrics.count("hints_delivered", delivered.length);
      }
      if (rejected.length > 0) {
        await this.hints.ack(rejected);
        this.metrics.count("hints_rejected", rejected.length);
        const reason = (results[batch.indexOf(rejected[0]!)] as PromiseRejectedResult).reason;
        this.log.warn("hints refused by their target as invalid were dropped (anti-entropy repairs their keys)", {
          target,
          hints: rejected.length,
          reason: String(reason),
        });
      }
      if (delivered.length + rejected.length < batch.length) {
        this.hints.recordFailure(target);
        this.metrics.count("hint_delivery_failures");
        const delay = this.schedule.failure(target, this.now());
        if (this.schedule.failures(target) === 1) {
          const reason = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
          this.log.info("hint delivery failed; backing off", { target, retryInMs: delay, reason: String(reason.reason) });
        }
        return;
      }
      if (this.schedule.failures(target) > 0) this.log.info("hint delivery resumed", { target });
      this.schedule.success(target);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}
