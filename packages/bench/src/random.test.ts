import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LatestChooser, Rng, UniformChooser, workerRng, ZIPFIAN_CONSTANT, ZipfianChooser } from "./random.js";

function draws(n: number, next: () => number): number[] {
  return Array.from({ length: n }, next);
}

function histogram(values: readonly number[], size: number): number[] {
  const counts = new Array<number>(size).fill(0);
  for (const v of values) counts[v]!++;
  return counts;
}

describe("Rng", () => {
  it("is deterministic per (seed, stream) and separates streams", () => {
    const x = new Rng(7, 3);
    const y = new Rng(7, 3);
    expect(draws(100, () => x.nextUint32())).toEqual(draws(100, () => y.nextUint32()));
    const other = new Rng(7, 4);
    const same = new Rng(7, 3);
    expect(draws(20, () => other.nextUint32())).not.toEqual(draws(20, () => same.nextUint32()));
  });

  it("draws floats in [0, 1) and integers in [0, bound)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 1, max: 1_000_000 }), (seed, bound) => {
        const rng = new Rng(seed);
        for (let i = 0; i < 50; i++) {
          const f = rng.next();
          expect(f >= 0 && f < 1).toBe(true);
          const n = rng.nextInt(bound);
          expect(Number.isInteger(n) && n >= 0 && n < bound).toBe(true);
        }
      }),
      { numRuns: 100 },
    );
    expect(() => new Rng(1).nextInt(0)).toThrow(RangeError);
    expect(() => new Rng(1).nextInt(1.5)).toThrow(RangeError);
  });

  it("fills byte arrays of any length", () => {
    for (const length of [0, 1, 3, 4, 5, 101]) {
      const bytes = new Rng(9).fill(new Uint8Array(length));
      expect(bytes.length).toBe(length);
    }
    const big = new Rng(9).fill(new Uint8Array(4096));
    // Not all zero, and every byte value range is used.
    expect(new Set(big).size).toBeGreaterThan(200);
  });

  it("gives each (phase, worker) its own reproducible stream", () => {
    const seq = (phase: string, worker: number) =>
      draws(
        10,
        (
          (rng) => () =>
            rng.nextUint32()
        )(workerRng(5, phase, worker)),
      );
    expect(seq("workload A", 0)).toEqual(seq("workload A", 0));
    expect(seq("workload A", 0)).not.toEqual(seq("workload A", 1));
    expect(seq("workload A", 0)).not.toEqual(seq("workload B", 0));
  });
});

describe("key choosers", () => {
  it("always pick an index in [0, count)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1000 }), fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 20 }), (seed, counts) => {
        const rng = new Rng(seed);
        const choosers = [new ZipfianChooser(), new LatestChooser(), new UniformChooser()];
        for (const count of counts) {
          for (const chooser of choosers) {
            const i = chooser.next(rng, count);
            expect(Number.isInteger(i) && i >= 0 && i < count).toBe(true);
          }
        }
      }),
      { numRuns: 100 },
    );
  });

  it("zipfian: item 0 is the most popular, at the theoretical rate 1/zeta(n)", () => {
    const n = 100;
    const rng = new Rng(11);
    const chooser = new ZipfianChooser();
    const total = 50_000;
    const counts = histogram(
      draws(total, () => chooser.next(rng, n)),
      n,
    );
    let zeta = 0;
    for (let i = 1; i <= n; i++) zeta += 1 / i ** ZIPFIAN_CONSTANT;
    expect(counts[0]! / total).toBeCloseTo(1 / zeta, 2);
    expect(counts[0]!).toBeGreaterThan(counts[1]!);
    expect(counts[1]!).toBeGreaterThan(counts[10]!);
    expect(counts[10]!).toBeGreaterThan(counts[99]!);
    expect(counts[99]!).toBeGreaterThan(0);
  });

  it("zipfian: growing the item count gives the same draws as starting at that count", () => {
    const grown = new ZipfianChooser();
    grown.next(new Rng(1), 50);
    grown.next(new Rng(1), 80);
    const fresh = new ZipfianChooser();
    const a = new Rng(3);
    const b = new Rng(3);
    expect(draws(200, () => grown.next(a, 120))).toEqual(draws(200, () => fresh.next(b, 120)));
  });

  it("zipfian: one or two items work", () => {
    const rng = new Rng(2);
    const chooser = new ZipfianChooser();
    expect(new Set(draws(100, () => chooser.next(rng, 1)))).toEqual(new Set([0]));
    expect(new Set(draws(200, () => chooser.next(rng, 2)))).toEqual(new Set([0, 1]));
    expect(() => chooser.next(rng, 0)).toThrow(RangeError);
    expect(() => new ZipfianChooser(1)).toThrow(RangeError);
  });

  it("latest: the newest item is the most popular", () => {
    const rng = new Rng(4);
    const chooser = new LatestChooser();
    const counts = histogram(
      draws(20_000, () => chooser.next(rng, 500)),
      500,
    );
    expect(counts.indexOf(Math.max(...counts))).toBe(499);
    expect(counts[499]!).toBeGreaterThan(counts[0]! * 50);
  });

  it("uniform: every item about equally often", () => {
    const rng = new Rng(6);
    const chooser = new UniformChooser();
    const counts = histogram(
      draws(40_000, () => chooser.next(rng, 20)),
      20,
    );
    for (const c of counts) expect(Math.abs(c - 2000)).toBeLessThan(250);
  });
});
