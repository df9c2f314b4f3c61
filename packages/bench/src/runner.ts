// The driver every phase runs on: `concurrency` workers, each issuing its next operation as soon
// as the previous one finished (closed loop), or, with a target rate, when the next operation of
// a fixed schedule is due, until the operation count or the duration is reached. Latencies are
// recorded per operation kind; failures are counted by error code.
import { Code, ConnectError } from "@connectrpc/connect";
import { type LatencySummary, LatencyRecorder } from "./latency.js";

/** What one operation did beyond taking time. */
export interface StepOutcome {
  /** Items the step counts for in throughput (a batch of 100 writes counts 100); default 1. */
  readonly operations?: number;
  /** RPCs the step made (a read-modify-write makes 2); default 1. */
  readonly requests?: number;
  /** The key did not exist. */
  readonly notFound?: boolean;
  /** Concurrent values a read returned; more than 1 means siblings. */
  readonly siblings?: number;
}

export interface Step {
  /** Operation kind, the histogram the latency goes to. */
  readonly kind: string;
  execute(): Promise<StepOutcome | void>;
}

/** Hands out a worker's operations; one source per worker. */
export type StepSource = () => Step;

export interface PhaseLimits {
  /** Stop issuing after this many measured operations. */
  readonly operations?: number;
  /** Stop issuing this long after measurement started. */
  readonly durationMs?: number;
  /** Operations started before this much time has passed are run but not measured (JIT, connections). */
  readonly warmupMs?: number;
}

export interface Progress {
  readonly phase: string;
  readonly warmingUp: boolean;
  /** Measured time so far. */
  readonly elapsedMs: number;
  /** Operations and errors so far, warm-up included. */
  readonly operations: number;
  readonly errors: number;
  /** Operations per second over the last progress interval. */
  readonly currentThroughput: number;
}

export interface PhaseOptions {
  readonly name: string;
  readonly concurrency: number;
  readonly limits: PhaseLimits;
  readonly createSource: (worker: number) => StepSource;
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: Progress) => void;
  readonly progressIntervalMs?: number;
  /** Monotonic milliseconds; injectable so tests can make latencies exact. */
  readonly clock?: () => number;
  /** Called once, as the first measured operation (the first after the warm-up) is issued. */
  readonly onMeasureStart?: () => void;
  /**
   * Operations per second to start, all workers together, on a fixed schedule from the phase's
   * start (the n-th is due n / rate seconds in). A worker takes the next due operation when it is
   * free, and its latency counts from when it was due, not from when it was sent: a system that
   * falls behind the schedule shows it in the latencies (no coordinated omission, as in wrk2).
   * Undefined: closed loop, each worker's next operation as soon as its last one finished.
   */
  readonly rate?: number;
  /** Waits this many milliseconds (on `clock`); injectable with the clock. Default: a timer. */
  readonly wait?: (ms: number) => Promise<void>;
}

export interface ErrorCounts {
  readonly total: number;
  /** Connect code name (Unavailable, DeadlineExceeded, …) or the error's class name. */
  readonly byCode: Readonly<Record<string, number>>;
  /** The first message seen per code, to say what went wrong. */
  readonly samples: Readonly<Record<string, string>>;
}

export interface PhaseResult {
  readonly name: string;
  readonly concurrency: number;
  /** Measured operations that succeeded. */
  readonly operations: number;
  readonly requests: number;
  readonly durationMs: number;
  /** Successful operations per second of measured time. */
  readonly throughput: number;
  readonly requestsPerSecond: number;
  readonly errors: ErrorCounts;
  readonly notFound: number;
  /** Reads that returned more than one value. */
  readonly siblingReads: number;
  /** Per operation kind. */
  readonly latency: Readonly<Record<string, LatencySummary>>;
  /** True when the run was interrupted before its limits. */
  readonly interrupted: boolean;
  /** The rate operations were scheduled at (PhaseOptions.rate); absent in a closed loop. */
  readonly targetRate?: number;
}

export class PhaseConfigError extends Error {
  override name = "PhaseConfigError";
}

export function errorCode(error: unknown): string {
  if (error instanceof ConnectError) return Code[error.code] ?? `code ${error.code}`;
  if (error instanceof Error) return error.name || "Error";
  return "Error";
}

function errorMessage(error: unknown): string {
  if (error instanceof ConnectError) return error.rawMessage;
  return error instanceof Error ? error.message : String(error);
}

export async function runPhase(options: PhaseOptions): Promise<PhaseResult> {
  const { name, concurrency, limits } = options;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new PhaseConfigError(`${name}: concurrency must be a positive integer, got ${concurrency}`);
  if (limits.operations === undefined && limits.durationMs === undefined) throw new PhaseConfigError(`${name}: give an operation count or a duration`);
  if (limits.operations !== undefined && !(Number.isInteger(limits.operations) && limits.operations >= 0)) {
    throw new PhaseConfigError(`${name}: operations must be a non-negative integer, got ${limits.operations}`);
  }
  if (limits.durationMs !== undefined && !(limits.durationMs >= 0))
    throw new PhaseConfigError(`${name}: duration must be non-negative, got ${limits.durationMs}`);
  const { rate } = options;
  if (rate !== undefined && !(Number.isFinite(rate) && rate > 0)) throw new PhaseConfigError(`${name}: rate must be a positive number, got ${rate}`);
  const wait = options.wait ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));

  const clock = options.clock ?? (() => performance.now());
  const startedAt = clock();
  const measureFrom = startedAt + (limits.warmupMs ?? 0);
  const stopIssuingAt = limits.durationMs === undefined ? Infinity : measureFrom + limits.durationMs;
  const recorders = new Map<string, LatencyRecorder>();
  const byCode: Record<string, number> = {};
  const samples: Record<string, string> = {};
  let issued = 0;
  let operations = 0;
  let requests = 0;
  let errors = 0;
  let notFound = 0;
  let siblingReads = 0;
  let interrupted = false;
  let measureStarted = false;
  // Warm-up included: what the live progress line shows.
  let liveOperations = 0;
  let liveErrors = 0;

  const mayIssue = (now: number): boolean => {
    if (options.signal?.aborted) {
      interrupted = true;
      return false;
    }
    if (now < measureFrom) return true;
    return now < stopIssuingAt && (limits.operations === undefined || issued < limits.operations);
  };

  // With a rate: the schedule's next operation (its number); each worker takes one when free.
  let scheduled = 0;
  /** With a rate: when this worker's next operation starts, the next scheduled one's due time (after waiting for it). */
  const nextDue = async (rate: number): Promise<number> => {
    const due = startedAt + (scheduled++ * 1000) / rate;
    // Not for a slot past the end (mayIssue(due) stops the worker), and in steps, so that an
    // interrupt is seen within 100 ms even at a low rate.
    if (due >= stopIssuingAt) return due;
    for (let ahead = due - clock(); ahead > 0 && !options.signal?.aborted; ahead = due - clock()) await wait(Math.min(ahead, 100));
    // Behind the schedule at the end: stop there rather than run on to catch up.
    return clock() < stopIssuingAt ? due : stopIssuingAt;
  };

  const worker = async (index: number): Promise<void> => {
    const source = options.createSource(index);
    for (;;) {
      // A closed loop starts at once, without an await (a promise per operation in the load generator).
      const begin = rate === undefined ? clock() : await nextDue(rate);
      if (!mayIssue(begin)) break;
      const measured = begin >= measureFrom;
      if (measured) {
        issued++;
        if (!measureStarted) {
          measureStarted = true;
          options.onMeasureStart?.();
        }
      }
      const step = source();
      let outcome: StepOutcome | void;
      try {
        outcome = await step.execute();
      } catch (error) {
        liveErrors++;
        if (measured) {
          errors++;
          const code = errorCode(error);
          byCode[code] = (byCode[code] ?? 0) + 1;
          samples[code] ??= errorMessage(error);
        }
        continue;
      }
      liveOperations += outcome?.operations ?? 1;
      if (!measured) continue;
      const latency = clock() - begin;
      let recorder = recorders.get(step.kind);
      if (!recorder) recorders.set(step.kind, (recorder = new LatencyRecorder()));
      recorder.record(latency);
      operations += outcome?.operations ?? 1;
      requests += outcome?.requests ?? 1;
      if (outcome?.notFound) notFound++;
      if ((outcome?.siblings ?? 0) > 1) siblingReads++;
    }
  };

  let timer: NodeJS.Timeout | undefined;
  if (options.onProgress) {
    const report = options.onProgress;
    let lastAt = startedAt;
    let lastOperations = 0;
    timer = setInterval(() => {
      const now = clock();
      const rate = now > lastAt ? ((liveOperations - lastOperations) * 1000) / (now - lastAt) : 0;
      lastAt = now;
      lastOperations = liveOperations;
      report({
        phase: name,
        warmingUp: now < measureFrom,
        elapsedMs: Math.max(0, now - measureFrom),
        operations: liveOperations,
        errors: liveErrors,
        currentThroughput: rate,
      });
    }, options.progressIntervalMs ?? 1000);
    timer.unref();
  }
  try {
    await Promise.all(Array.from({ length: concurrency }, (_, i) => worker(i)));
  } finally {
    if (timer) clearInterval(timer);
  }

  const durationMs = Math.max(0, clock() - Math.max(measureFrom, startedAt));
  const perSecond = (count: number) => (durationMs > 0 ? (count * 1000) / durationMs : 0);
  const latency: Record<string, LatencySummary> = {};
  for (const [kind, recorder] of [...recorders].sort(([a], [b]) => a.localeCompare(b))) latency[kind] = recorder.summary();
  return {
    name,
    concurrency,
    operations,
    requests,
    durationMs,
    throughput: perSecond(operations),
    requestsPerSecond: perSecond(requests),
    errors: { total: errors, byCode, samples },
    notFound,
    siblingReads,
    latency,
    interrupted,
    ...(rate === undefined ? {} : { targetRate: rate }),
  };
}
