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
  private readonly passed: AbortController;
  /** Behind `signal` when there is a client signal: aborted by the deadline or by the client. */
  private readonly either: AbortController | undefined;
  private readonly clientSignal: AbortSignal | undefined;
  /** Cancels the pending timer; undefined once it fired or was released. */
  private cancelTimer: (() => void) | undefined;
  /** Tasks (replica calls the request left running, read repair) that may still need replicaSignal. */
  private holds = 0;
  private answered = false;

  constructor(timeoutMs: number, clientSignal?: AbortSignal, clock: Clock = systemClock) {
    this.clock = clock;
    this.at = clock.now() + timeoutMs;
    this.passed = new AbortController();
    this.replicaSignal = this.passed.signal;
    if (clientSignal) {
      // Not AbortSignal.any(): Node links such signals through WeakRefs, Sets and
      // FinalizationRegistry cells, and with it 13% of what requests allocated was promoted to
      // the old generation in a micro-benchmark, none without (docs/performance.md, eighth
      // pass). A listener removed in done() does the same job.
      this.either = new AbortController();
      this.clientSignal = clientSignal;
      this.signal = this.either.signal;
      if (clientSignal.aborted) this.either.abort(clientSignal.reason);
      else clientSignal.addEventListener("abort", this.onClientAbort, { once: true });
    } else {
      this.signal = this.replicaSignal;
    }
    this.arm(timeoutMs);
  }

  remainingMs(): number {
    return Math.max(0, this.at - this.clock.now());
  }

  get expired(): boolean {
    return this.signal.aborted;
  }

  /**
   * Keeps the deadline's timer for as long as `task` runs: replica calls a request leaves running
   * after it answered (the write to the last replica, hints, read repair) still end at the
   * deadline. Register them before done().
   */
  hold(task: Promise<unknown>): void {
    this.retain();
    task.then(this.release, this.release);
  }

  /**
   * As hold(), for a task that tells when it ends by calling release() once (the coordinator's
   * replica calls, which have their own handlers: a promise more per call was a cost per request).
   */
  retain(): void {
    this.holds++;
    // Registered late (after a release): the timer runs again for what is left.
    if (this.cancelTimer === undefined && !this.passed.signal.aborted) this.arm(this.remainingMs());
  }

  /** Ends one retain(). */
  readonly release = (): void => {
    this.holds--;
    this.releaseIfIdle();
  };

  /**
   * The request is answered. Once no held task is left, the timer is cancelled: nothing remains
   * for it to abort, and a timer kept for the whole timeout kept the request's controller,
   * signal and timer alive into the old generation (373 bytes a request, promoted and collected
   * by a full GC seconds later, at thousands of requests a second).
   */
  done(): void {
    this.answered = true;
    this.clientSignal?.removeEventListener("abort", this.onClientAbort);
    this.releaseIfIdle();
  }

  private readonly onClientAbort = (): void => {
    this.either?.abort(this.clientSignal?.reason);
  };

  private releaseIfIdle(): void {
    if (!this.answered || this.holds > 0 || this.cancelTimer === undefined) return;
    this.cancelTimer();
    this.cancelTimer = undefined;
  }

  private arm(ms: number): void {
    this.cancelTimer = this.clock.setTimeout(() => {
      this.cancelTimer = undefined;
      this.passed.abort(DEADLINE_PASSED);
      this.either?.abort(DEADLINE_PASSED);
    }, ms);
  }
}
