// The throttle on anti-entropy's traffic: token buckets on keys and bytes moved, shared by both
// directions and by this node's initiator and responder sides, so that background work cannot
// starve client traffic.
import { setTimeout as sleep } from "node:timers/promises";
import type { Metrics } from "../../observability/metrics.js";

/**
 * A token bucket that may go into debt: take(n) always succeeds and says how long the caller
 * must wait before going on, so a batch larger than the burst is paced rather than refused.
 * Pure: time is passed in.
 */
export class TokenBucket {
  private level: number;
  private last: number;

  constructor(
    readonly ratePerSecond: number,
    readonly burst: number,
    private readonly now: () => number,
  ) {
    if (!(ratePerSecond > 0) || !Number.isFinite(ratePerSecond)) throw new RangeError(`rate must be a positive number, got ${ratePerSecond}`);
    if (!(burst > 0) || !Number.isFinite(burst)) throw new RangeError(`burst must be a positive number, got ${burst}`);
    this.level = burst;
    this.last = now();
  }

  /** Takes `amount` tokens; returns the milliseconds to wait before using them (0: go on now). */
  take(amount: number): number {
    if (!(amount >= 0) || !Number.isFinite(amount)) throw new RangeError(`amount must be a non-negative number, got ${amount}`);
    const now = this.now();
    this.level = Math.min(this.burst, this.level + (Math.max(0, now - this.last) * this.ratePerSecond) / 1000);
    this.last = now;
    this.level -= amount;
    return this.level >= 0 ? 0 : Math.ceil((-this.level * 1000) / this.ratePerSecond);
  }
}

/** The node's key and byte buckets (a burst of one second each), and the wait they impose. */
export class Throttle {
  private readonly keyBucket: TokenBucket;
  private readonly byteBucket: TokenBucket;

  constructor(
    rates: { readonly keysPerSecond: number; readonly bytesPerSecond: number },
    now: () => number,
    private readonly metrics: Metrics,
    /** Aborts a wait when anti-entropy stops. */
    private readonly stopping: AbortSignal,
  ) {
    this.keyBucket = new TokenBucket(rates.keysPerSecond, rates.keysPerSecond, now);
    this.byteBucket = new TokenBucket(rates.bytesPerSecond, rates.bytesPerSecond, now);
  }

  /** Takes `keys` and `bytes` and waits as long as the bucket deepest in debt says. */
  async take(keys: number, bytes: number): Promise<void> {
    const wait = Math.max(keys > 0 ? this.keyBucket.take(keys) : 0, bytes > 0 ? this.byteBucket.take(bytes) : 0);
    if (wait > 0) {
      this.metrics.count("anti_entropy_throttled_ms", wait);
      await sleep(wait, undefined, { signal: this.stopping });
    }
  }
}
