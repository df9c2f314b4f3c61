import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { errorCode, PhaseConfigError, type Progress, runPhase, type Step } from "./runner.js";

/** A clock the steps advance, so every latency is exact. */
function fakeClock() {
  let now = 1_000;
  return { clock: () => now, advance: (ms: number) => (now += ms) };
}

describe("runPhase at a target rate", () => {
  it("starts operations on the schedule and counts latency from when each was due", async () => {
    const time = fakeClock();
    const starts: number[] = [];
    const result = await runPhase({
      name: "paced",
      concurrency: 1,
      rate: 100,
      limits: { durationMs: 1_000 },
      clock: time.clock,
      wait: async (ms) => void time.advance(ms),
      createSource: () => (): Step => ({
        kind: "op",
        execute: async () => {
          starts.push(time.clock());
          time.advance(5);
        },
      }),
    });
    // One every 10 ms for 1 s, each started when due; a closed loop would have run 200.
    expect(result.operations).toBe(100);
    expect(starts.slice(0, 3)).toEqual([1_000, 1_010, 1_020]);
    expect(result.latency.op!.maxMs).toBe(5);
    expect(result.targetRate).toBe(100);
  });

  it("counts the wait of an operation that fell behind the schedule in its latency, and stops at the end", async () => {
    const time = fakeClock();
    const result = await runPhase({
      name: "behind",
      concurrency: 1,
      rate: 100,
      limits: { durationMs: 200 },
      clock: time.clock,
      wait: async (ms) => void time.advance(ms),
      createSource: () => (): Step => ({ kind: "op", execute: async () => void time.advance(20) }),
    });
    // Due every 10 ms, each takes 20: the k-th starts at 20k, is due at 10k and ends at 20k + 20.
    // Started until the end (200 ms): 10 operations; the last one waited 90 ms for its turn.
    expect(result.operations).toBe(10);
    expect(result.latency.op!.maxMs).toBe(110);
    expect(result.latency.op!.p50Ms).toBeGreaterThanOrEqual(60);
  });

  it("spreads the schedule over the workers: the rate is for all of them together", async () => {
    let n = 0;
    const result = await runPhase({
      name: "spread",
      concurrency: 4,
      rate: 400,
      limits: { operations: 40 },
      createSource: () => (): Step => ({ kind: "op", execute: async () => void n++ }),
    });
    expect(n).toBe(40);
    expect(result.operations).toBe(40);
    // 40 operations at 400/s: about 0.1 s (with timers' slack), not 40 back to back.
    expect(result.durationMs).toBeGreaterThanOrEqual(90);
  });

  it("refuses a rate that is not a positive number", async () => {
    for (const rate of [0, -5, Number.NaN, Infinity]) {
      await expect(
        runPhase({ name: "bad", concurrency: 1, rate, limits: { operations: 1 }, createSource: () => () => ({ kind: "op", execute: async () => {} }) }),
      ).rejects.toThrow(PhaseConfigError);
    }
  });
});

describe("runPhase", () => {
  it("runs exactly the operation count over all workers and records latency per kind", async () => {
    const time = fakeClock();
    let n = 0;
    const result = await runPhase({
      name: "count",
      concurrency: 4,
      limits: { operations: 100 },
      clock: time.clock,
      createSource: () => (): Step => {
        const i = n++;
        return {
          kind: i % 2 === 0 ? "read" : "write",
          execute: async () => {
            time.advance(i % 2 === 0 ? 2 : 4);
            return i % 2 === 0 ? { siblings: i % 10 === 0 ? 2 : 1 } : { requests: 2 };
          },
        };
      },
    });
    expect(n).toBe(100);
    expect(result.operations).toBe(100);
    expect(result.requests).toBe(50 + 100);
    expect(result.latency.read!.count).toBe(50);
    expect(result.latency.write!.count).toBe(50);
    expect(result.siblingReads).toBe(10);
    expect(result.errors.total).toBe(0);
    expect(result.interrupted).toBe(false);
    // Each latency spans the clock advances of all workers' steps in between; each is at least its own.
    expect(result.latency.read!.p50Ms).toBeGreaterThanOrEqual(2);
    expect(result.durationMs).toBe(300);
    expect(result.throughput).toBeCloseTo(100 / 0.3, 6);
  });

  it("counts failures by Connect code, keeps a sample message, and records no latency for them", async () => {
    let n = 0;
    const result = await runPhase({
      name: "errors",
      concurrency: 3,
      limits: { operations: 30 },
      createSource: () => (): Step => {
        const i = n++;
        return {
          kind: "op",
          execute: async () => {
            if (i % 3 === 0) throw new ConnectError("2 of 3 replicas needed", Code.Unavailable);
            if (i % 5 === 0) throw new TypeError("broken");
            return i % 7 === 0 ? { notFound: true } : {};
          },
        };
      },
    });
    expect(result.errors.byCode).toEqual({ Unavailable: 10, TypeError: 4 });
    expect(result.errors.total).toBe(14);
    expect(result.errors.samples.Unavailable).toBe("2 of 3 replicas needed");
    expect(result.operations).toBe(16);
    expect(result.latency.op!.count).toBe(16);
    expect(result.notFound).toBe(3); // 7, 14, 28
  });

  it("runs but does not measure the warm-up", async () => {
    const time = fakeClock();
    let started = 0;
    const measureStartedAfter: number[] = [];
    const result = await runPhase({
      name: "warm",
      concurrency: 1,
      limits: { operations: 5, warmupMs: 35 },
      clock: time.clock,
      onMeasureStart: () => measureStartedAfter.push(started),
      createSource: () => () => ({
        kind: "op",
        execute: async () => {
          started++;
          time.advance(10);
        },
      }),
    });
    // Starts at 0, 10, 20, 30 ms are warm-up; 40 … 80 ms are the five measured ones.
    expect(started).toBe(9);
    // Called once, as the first measured operation (the fifth started) begins.
    expect(measureStartedAfter).toEqual([4]);
    expect(result.operations).toBe(5);
    expect(result.latency.op!.count).toBe(5);
    expect(result.durationMs).toBe(55);
  });

  it("stops issuing when the duration is up", async () => {
    const time = fakeClock();
    const result = await runPhase({
      name: "timed",
      concurrency: 1,
      limits: { durationMs: 100 },
      clock: time.clock,
      createSource: () => () => ({ kind: "op", execute: async () => void time.advance(10) }),
    });
    expect(result.operations).toBe(10);
    expect(result.durationMs).toBe(100);
    expect(result.throughput).toBe(100);
  });

  it("stops early when aborted and says so", async () => {
    const abort = new AbortController();
    let n = 0;
    const result = await runPhase({
      name: "abort",
      concurrency: 2,
      limits: { operations: 1_000 },
      signal: abort.signal,
      createSource: () => () => ({
        kind: "op",
        execute: async () => {
          if (++n === 10) abort.abort();
        },
      }),
    });
    expect(result.interrupted).toBe(true);
    expect(result.operations).toBeLessThan(1_000);
    expect(result.operations).toBeGreaterThanOrEqual(10);
  });

  it("reports progress while it runs", async () => {
    const seen: Progress[] = [];
    const stop = new AbortController();
    const result = await runPhase({
      name: "progress",
      concurrency: 2,
      limits: { operations: 1_000_000 },
      progressIntervalMs: 5,
      signal: stop.signal,
      // The first report ends the phase.
      onProgress: (p) => {
        seen.push(p);
        stop.abort();
      },
      createSource: () => () => ({ kind: "op", execute: () => new Promise<void>((resolve) => setImmediate(resolve)) }),
    });
    expect(seen.length).toBeGreaterThan(0);
    expect(seen[0]!.phase).toBe("progress");
    expect(seen[0]!.operations).toBeGreaterThan(0);
    expect(Number.isFinite(seen[0]!.currentThroughput)).toBe(true);
    expect(result.interrupted).toBe(true);
  });

  it("rejects a phase without limits or with a bad concurrency", async () => {
    const createSource = () => () => ({ kind: "op", execute: async () => undefined });
    await expect(runPhase({ name: "x", concurrency: 1, limits: {}, createSource })).rejects.toThrow(PhaseConfigError);
    await expect(runPhase({ name: "x", concurrency: 0, limits: { operations: 1 }, createSource })).rejects.toThrow(/concurrency/);
    await expect(runPhase({ name: "x", concurrency: 1, limits: { operations: -1 }, createSource })).rejects.toThrow(/operations/);
  });
});

describe("errorCode", () => {
  it("names Connect codes and error classes", () => {
    expect(errorCode(new ConnectError("late", Code.DeadlineExceeded))).toBe("DeadlineExceeded");
    expect(errorCode(new RangeError("x"))).toBe("RangeError");
    expect(errorCode("string")).toBe("Error");
  });
});
