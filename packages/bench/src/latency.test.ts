import { describe, expect, it } from "vitest";
import { LatencyRecorder } from "./latency.js";

describe("LatencyRecorder", () => {
  it("reports percentiles and max in ms to three significant digits", () => {
    const recorder = new LatencyRecorder();
    // 1.000 … 1000.000 ms, one each.
    for (let i = 1; i <= 1000; i++) recorder.record(i);
    const s = recorder.summary();
    expect(s.count).toBe(1000);
    expect(s.p50Ms).toBeCloseTo(500, -1);
    expect(Math.abs(s.p95Ms - 950) / 950).toBeLessThan(0.002);
    expect(Math.abs(s.p99Ms - 990) / 990).toBeLessThan(0.002);
    expect(Math.abs(s.p999Ms - 999) / 999).toBeLessThan(0.002);
    expect(Math.abs(s.maxMs - 1000) / 1000).toBeLessThan(0.002);
    expect(Math.abs(s.meanMs - 500.5) / 500.5).toBeLessThan(0.002);
  });

  it("keeps sub-millisecond latencies apart", () => {
    const recorder = new LatencyRecorder();
    recorder.record(0.05);
    recorder.record(0.25);
    expect(recorder.summary().p50Ms).toBe(0.05);
    expect(recorder.summary().maxMs).toBe(0.25);
  });

  it("summarizes an empty recorder as zeros and rejects nonsense", () => {
    expect(new LatencyRecorder().summary()).toEqual({ count: 0, meanMs: 0, p50Ms: 0, p95Ms: 0, p99Ms: 0, p999Ms: 0, maxMs: 0 });
    expect(() => new LatencyRecorder().record(-1)).toThrow(RangeError);
    expect(() => new LatencyRecorder().record(Number.NaN)).toThrow(RangeError);
  });
});

describe("LatencyRecorder percentiles", () => {
  it("never exceed the max", () => {
    const recorder = new LatencyRecorder();
    for (const ms of [161.894, 3.2, 50.01, 161.5, 0.7]) recorder.record(ms);
    const s = recorder.summary();
    expect(s.maxMs).toBe(161.894);
    expect(s.p999Ms).toBeLessThanOrEqual(s.maxMs);
    expect(s.p99Ms).toBeLessThanOrEqual(s.maxMs);
  });
});
