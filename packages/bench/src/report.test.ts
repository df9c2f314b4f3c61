import { describe, expect, it } from "vitest";
import { formatErrors, formatMs, formatProgress, formatRate, formatRatio } from "./report.js";

describe("report formatting", () => {
  it("formats rates, latencies and ratios for reading", () => {
    expect(formatRate(12345.6)).toBe("12,346");
    expect(formatMs(0.123)).toBe("0.12");
    expect(formatMs(12.34)).toBe("12.3");
    expect(formatMs(1234.5)).toBe("1235");
    expect(formatRatio(0.5123)).toBe("0.51");
    expect(formatRatio(0.00412)).toBe("0.0041");
    expect(formatRatio(undefined)).toBe("-");
  });

  it("lists errors by code, most frequent first, with a sample message", () => {
    expect(formatErrors({ total: 0, byCode: {}, samples: {} })).toBe("none");
    expect(formatErrors({ total: 5, byCode: { DeadlineExceeded: 1, Unavailable: 4 }, samples: { Unavailable: "1 of 3", DeadlineExceeded: "late" } })).toBe(
      'Unavailable 4 ("1 of 3"), DeadlineExceeded 1 ("late")',
    );
  });

  it("shows warm-up and measured progress", () => {
    expect(formatProgress({ phase: "workload A", warmingUp: true, elapsedMs: 0, operations: 10, errors: 0, currentThroughput: 99.6 })).toBe(
      "workload A  warm-up  100 ops/s  10 ops  errors 0",
    );
    expect(formatProgress({ phase: "workload A", warmingUp: false, elapsedMs: 2500, operations: 1500, errors: 2, currentThroughput: 600 })).toBe(
      "workload A  2.5 s  600 ops/s  1,500 ops  errors 2",
    );
  });
});
