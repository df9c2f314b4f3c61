// A request's deadline, on a clock that tests can replace (a fake clock makes deadlines
// deterministic: coordinator.test.ts).

/** Time and timers. */
export interface Clock {
  now(): number;
  /** Calls `fn` after `ms`; returns a function that cancels it. Timers must not keep the process alive. */
  setTimeout(fn: () => void, ms: number): () => void;
}

export const systemClock: Clock = {
  now: Date.now,
  setTimeout(fn, ms) {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return () => clearTimeout(timer);
  },
};

/**
 * `signal` fires when the deadline passes or the client goes away: it ends the wait for a
 * quorum. `replicaSignal` fires only when it passes: replica calls still running after the
 * client got its answer (the write to the third replica, the reads read repair waits for)
 * carry on until then, rather than dying with the request.
 */
/**
 * The reason every passed deadline aborts with: one instance, made once. A DOMException per
 * request (each deadline's timer fires, answered or not, to end its replica calls) showed up in
 * profiles of the write path.
 */
const DEADLINE_PASSED = new DOMException("the deadline passed", "TimeoutError");

export class Deadline {
  readonly signal: AbortSignal;
  readonly replicaSignal: AbortSignal;
  readonly at: number;
  private readonly clock: Clock;

  constructor(timeoutMs: number, clientSignal?: AbortSignal, clock: Clock = systemClock) {
    this.clock = clock;
    this.at = clock.now() + timeoutMs;
    const passed = new AbortController();
    clock.setTimeout(() => passed.abort(DEADLINE_PASSED), timeoutMs);
    this.replicaSignal = passed.signal;
    this.signal = clientSignal ? AbortSignal.any([this.replicaSignal, clientSignal]) : this.replicaSignal;
  }

  remainingMs(): number {
    return Math.max(0, this.at - this.clock.now());
  }

  get expired(): boolean {
    return this.signal.aborted;
  }
}
