import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compare, covers, equalClocks, mergeClocks } from "./clock.js";
import type { VersionVector } from "./clock.js";
import { dotArbitrary, smallClock } from "./test-support/arbitraries.js";

const clock = (entries: Record<string, number>): VersionVector => new Map(Object.entries(entries));
const inverse = { equal: "equal", before: "after", after: "before", concurrent: "concurrent" } as const;
const params = { numRuns: 300, seed: 7 };

describe("compare", () => {
  it("orders clocks causally", () => {
    expect(compare(clock({}), clock({}))).toBe("equal");
    expect(compare(clock({ a: 1 }), clock({ a: 1 }))).toBe("equal");
    expect(compare(clock({}), clock({ a: 1 }))).toBe("before");
    expect(compare(clock({ a: 1 }), clock({ a: 2, b: 1 }))).toBe("before");
    expect(compare(clock({ a: 2, b: 1 }), clock({ a: 2 }))).toBe("after");
    expect(compare(clock({ a: 2 }), clock({ b: 1 }))).toBe("concurrent");
    expect(compare(clock({ a: 2, b: 1 }), clock({ a: 1, b: 2 }))).toBe("concurrent");
  });

  it("is reflexive and antisymmetric", () => {
    fc.assert(
      fc.property(smallClock, smallClock, (a, b) => {
        expect(compare(a, a)).toBe("equal");
        expect(compare(b, a)).toBe(inverse[compare(a, b)]);
      }),
      params,
    );
  });

  it("agrees with mergeClocks: a is before b exactly when merging a into b changes nothing and they differ", () => {
    fc.assert(
      fc.property(smallClock, smallClock, (a, b) => {
        const merged = mergeClocks(a, b);
        const expected = equalClocks(a, b) ? "equal" : equalClocks(merged, b) ? "before" : equalClocks(merged, a) ? "after" : "concurrent";
        expect(compare(a, b)).toBe(expected);
      }),
      params,
    );
  });

  it("is transitive for before", () => {
    fc.assert(
      fc.property(smallClock, smallClock, smallClock, (a, b, c) => {
        fc.pre(compare(a, b) === "before" && compare(b, c) === "before");
        expect(compare(a, c)).toBe("before");
      }),
      { ...params, numRuns: 100 },
    );
  });
});

describe("mergeClocks", () => {
  it("is the pointwise maximum", () => {
    expect(mergeClocks(clock({ a: 3, b: 1 }), clock({ b: 2, c: 1 }))).toEqual(clock({ a: 3, b: 2, c: 1 }));
  });

  it("is commutative, associative, idempotent, with the empty clock as identity", () => {
    fc.assert(
      fc.property(smallClock, smallClock, smallClock, (a, b, c) => {
        expect(equalClocks(mergeClocks(a, b), mergeClocks(b, a))).toBe(true);
        expect(equalClocks(mergeClocks(mergeClocks(a, b), c), mergeClocks(a, mergeClocks(b, c)))).toBe(true);
        expect(equalClocks(mergeClocks(a, a), a)).toBe(true);
        expect(equalClocks(mergeClocks(a, new Map()), a)).toBe(true);
      }),
      params,
    );
  });

  it("is an upper bound of both inputs and does not modify them", () => {
    fc.assert(
      fc.property(smallClock, smallClock, (a, b) => {
        const before = [new Map(a), new Map(b)];
        const merged = mergeClocks(a, b);
        expect(["after", "equal"]).toContain(compare(merged, a));
        expect(["after", "equal"]).toContain(compare(merged, b));
        expect([a, b]).toEqual(before);
      }),
      params,
    );
  });
});

describe("covers", () => {
  it("holds for dots at or below the node's counter", () => {
    expect(covers(clock({ a: 2 }), { node: "a", counter: 2 })).toBe(true);
    expect(covers(clock({ a: 2 }), { node: "a", counter: 3 })).toBe(false);
    expect(covers(clock({ a: 2 }), { node: "b", counter: 1 })).toBe(false);
  });

  it("distributes over mergeClocks", () => {
    fc.assert(
      fc.property(smallClock, smallClock, dotArbitrary, (a, b, dot) => {
        expect(covers(mergeClocks(a, b), dot)).toBe(covers(a, dot) || covers(b, dot));
      }),
      params,
    );
  });
});
