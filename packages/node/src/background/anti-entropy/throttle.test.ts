// The token bucket that paces anti-entropy's traffic: bursts, pacing, and its bound.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TokenBucket } from "./throttle.js";

describe("TokenBucket", () => {
  it("lets a burst through at once, then paces takes at the rate", () => {
    let now = 0;
    const bucket = new TokenBucket(100, 100, () => now);
    expect(bucket.take(100)).toBe(0);
    expect(bucket.take(50)).toBe(500); // 50 tokens of debt at 100/s
    now = 500;
    expect(bucket.take(0)).toBe(0);
    now = 600;
    expect(bucket.take(10)).toBe(0);
    now = 10_000; // idle time refills up to the burst only
    expect(bucket.take(100)).toBe(0);
    expect(bucket.take(1)).toBe(10);
  });

  it("never lets a caller that waits as told exceed burst + rate x elapsed", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5000 }),
        fc.integer({ min: 1, max: 5000 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0, max: 2000 })), { maxLength: 60 }),
        (rate, burst, steps) => {
          let now = 0;
          const bucket = new TokenBucket(rate, burst, () => now);
          let used = 0;
          for (const [amount, idle] of steps) {
            now += idle;
            now += bucket.take(amount);
            used += amount;
            expect(used).toBeLessThanOrEqual(burst + (rate * now) / 1000 + 1e-6);
          }
        },
      ),
      { seed: 7, numRuns: 200 },
    );
  });

  it("rejects a rate, burst or amount that is not a positive number", () => {
    expect(() => new TokenBucket(0, 1, () => 0)).toThrow(RangeError);
    expect(() => new TokenBucket(1, Number.NaN, () => 0)).toThrow(RangeError);
    expect(() => new TokenBucket(1, 1, () => 0).take(-1)).toThrow(RangeError);
  });
});
