import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RingError, TOKEN_SPACE, rangeContains, rangeIntervals, rangeSize } from "./index.js";

const MAX = TOKEN_SPACE - 1;
const token = fc.integer({ min: 0, max: MAX });

describe("rangeContains", () => {
  it("excludes start and includes end of a plain range", () => {
    const range = { start: 10, end: 20 };
    expect(rangeContains(range, 10)).toBe(false);
    expect(rangeContains(range, 11)).toBe(true);
    expect(rangeContains(range, 20)).toBe(true);
    expect(rangeContains(range, 21)).toBe(false);
    expect(rangeContains(range, 0)).toBe(false);
  });

  it("wraps around 2^32 when start > end", () => {
    const range = { start: MAX - 5, end: 5 };
    expect(rangeContains(range, MAX - 5)).toBe(false);
    expect(rangeContains(range, MAX - 4)).toBe(true);
    expect(rangeContains(range, MAX)).toBe(true);
    expect(rangeContains(range, 0)).toBe(true);
    expect(rangeContains(range, 5)).toBe(true);
    expect(rangeContains(range, 6)).toBe(false);
    expect(rangeContains(range, 1000)).toBe(false);
  });

  it("treats start === end as the whole ring", () => {
    fc.assert(
      fc.property(token, token, (bound, t) => {
        expect(rangeContains({ start: bound, end: bound }, t)).toBe(true);
      }),
      { numRuns: 200, seed: 1 },
    );
  });

  it("splits the ring: (a, b] and (b, a] are disjoint and cover every token", () => {
    fc.assert(
      fc.property(token, token, token, (a, b, t) => {
        fc.pre(a !== b);
        expect(rangeContains({ start: a, end: b }, t)).not.toBe(rangeContains({ start: b, end: a }, t));
        expect(rangeSize({ start: a, end: b }) + rangeSize({ start: b, end: a })).toBe(TOKEN_SPACE);
      }),
      { numRuns: 300, seed: 2 },
    );
  });

  it("rejects tokens and bounds outside [0, 2^32)", () => {
    expect(() => rangeContains({ start: 0, end: 1 }, -1)).toThrow(RingError);
    expect(() => rangeContains({ start: 0, end: 1 }, TOKEN_SPACE)).toThrow(RingError);
    expect(() => rangeContains({ start: 0.5, end: 1 }, 1)).toThrow(RingError);
    expect(() => rangeContains({ start: 0, end: Number.NaN }, 1)).toThrow(RingError);
  });
});

describe("rangeSize", () => {
  it("counts the tokens of plain, wrapping and whole-ring ranges", () => {
    expect(rangeSize({ start: 10, end: 20 })).toBe(10);
    expect(rangeSize({ start: MAX, end: 0 })).toBe(1);
    expect(rangeSize({ start: 7, end: 7 })).toBe(TOKEN_SPACE);
  });
});

describe("rangeIntervals", () => {
  it("gives one interval for a plain range, two for a wrapping one, the whole ring for start === end", () => {
    expect(rangeIntervals({ start: 10, end: 20 })).toEqual([[11, 20]]);
    expect(rangeIntervals({ start: MAX - 5, end: 5 })).toEqual([
      [MAX - 4, MAX],
      [0, 5],
    ]);
    expect(rangeIntervals({ start: MAX, end: 5 })).toEqual([[0, 5]]);
    expect(rangeIntervals({ start: 7, end: 7 })).toEqual([[0, MAX]]);
  });

  it("holds exactly the tokens rangeContains admits, rangeSize of them", () => {
    fc.assert(
      fc.property(token, token, token, (start, end, t) => {
        const intervals = rangeIntervals({ start, end });
        expect(intervals.some(([low, high]) => low <= t && t <= high)).toBe(rangeContains({ start, end }, t));
        expect(intervals.reduce((sum, [low, high]) => sum + high - low + 1, 0)).toBe(rangeSize({ start, end }));
      }),
      { numRuns: 500, seed: 7 },
    );
  });
});
