// Latency recording in an HDR histogram: microsecond resolution, 3 significant digits, so that
// p99.9 and max are exact to 0.1% whatever the run length, in constant memory.
import { build, type Histogram } from "hdr-histogram-js";

/** Latencies of one operation kind, in milliseconds. */
export interface LatencySummary {
  readonly count: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
}

export class LatencyRecorder {
  private readonly histogram: Histogram = build({
    bitBucketSize: 32,
    autoResize: true,
    lowestDiscernibleValue: 1,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  });

  /** Records one latency given in milliseconds (rounded to whole microseconds, at least 1). */
  record(latencyMs: number): void {
    if (!Number.isFinite(latencyMs) || latencyMs < 0) throw new RangeError(`latency must be a finite, non-negative number of ms, got ${latencyMs}`);
    this.histogram.recordValue(Math.max(1, Math.round(latencyMs * 1000)));
  }

  get count(): number {
    return this.histogram.totalCount;
  }

  summary(): LatencySummary {
    const h = this.histogram;
    if (h.totalCount === 0) return { count: 0, meanMs: 0, p50Ms: 0, p95Ms: 0, p99Ms: 0, p999Ms: 0, maxMs: 0 };
    // A percentile is reported as the top of its bucket, which can lie above the exact max.
    const max = h.maxValue;
    const percentile = (p: number) => Math.min(h.getValueAtPercentile(p), max) / 1000;
    return {
      count: h.totalCount,
      meanMs: h.mean / 1000,
      p50Ms: percentile(50),
      p95Ms: percentile(95),
      p99Ms: percentile(99),
      p999Ms: percentile(99.9),
      maxMs: max / 1000,
    };
  }
}
