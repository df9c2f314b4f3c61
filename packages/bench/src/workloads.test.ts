import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Rng, UniformChooser } from "./random.js";
import { chooseOperation, isWorkloadName, keyName, KeySpace, OPERATION_KINDS, type OperationKind, WORKLOAD_NAMES, WORKLOADS } from "./workloads.js";

describe("workloads", () => {
  it("have shares that sum to 1", () => {
    for (const name of WORKLOAD_NAMES) {
      const sum = Object.values(WORKLOADS[name].mix).reduce((a, b) => a + b, 0);
      expect(sum).toBeCloseTo(1, 10);
    }
    expect(WORKLOAD_NAMES).toEqual(["A", "B", "C", "D", "F"]);
  });

  it("choose operations in the proportions of the mix", () => {
    const steps = 10_000;
    for (const name of WORKLOAD_NAMES) {
      const spec = WORKLOADS[name];
      const counts: Partial<Record<OperationKind, number>> = {};
      for (let i = 0; i < steps; i++) {
        const kind = chooseOperation(spec, i / steps);
        counts[kind] = (counts[kind] ?? 0) + 1;
      }
      for (const kind of OPERATION_KINDS) expect((counts[kind] ?? 0) / steps).toBeCloseTo(spec.mix[kind] ?? 0, 3);
    }
  });

  it("give the top sliver of [0, 1) to the last kind", () => {
    expect(chooseOperation(WORKLOADS.A, 0.9999999999)).toBe("update");
    expect(chooseOperation(WORKLOADS.C, 0.9999999999)).toBe("read");
    expect(() => chooseOperation({ name: "A", description: "", mix: {}, distribution: "uniform" }, 0.5)).toThrow(RangeError);
  });

  it("are named A, B, C, D and F", () => {
    expect(isWorkloadName("A")).toBe(true);
    expect(isWorkloadName("E")).toBe(false);
    expect(isWorkloadName("toString")).toBe(false);
  });
});

describe("KeySpace", () => {
  it("makes an insert readable once every insert below it has settled", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 0, max: 40 }), fc.integer(), (loaded, inserts, seed) => {
        const space = new KeySpace(loaded);
        const issued = Array.from({ length: inserts }, () => space.issueInsert());
        expect(issued).toEqual(Array.from({ length: inserts }, (_, i) => loaded + i));
        // Settle in a shuffled order; after each, readable is the longest settled prefix.
        const rng = new Rng(seed);
        const order = [...issued];
        for (let i = order.length - 1; i > 0; i--) {
          const j = rng.nextInt(i + 1);
          [order[i], order[j]] = [order[j]!, order[i]!];
        }
        const settled = new Set<number>();
        for (const index of order) {
          space.settle(index);
          settled.add(index);
          let expected = loaded;
          while (settled.has(expected)) expected++;
          expect(space.readable).toBe(expected);
        }
        expect(space.readable).toBe(loaded + inserts);
      }),
      { numRuns: 100 },
    );
  });

  it("ignores settling what was never issued or is already readable", () => {
    const space = new KeySpace(10);
    space.settle(3);
    space.settle(10);
    expect(space.readable).toBe(10);
    expect(() => new KeySpace(0)).toThrow(RangeError);
  });

  it("chooses among the readable items", () => {
    const space = new KeySpace(5);
    const rng = new Rng(1);
    for (let i = 0; i < 100; i++) expect(space.choose(new UniformChooser(), rng)).toBeLessThan(5);
    expect(keyName("bench-1:", 42)).toBe("bench-1:42");
  });
});
