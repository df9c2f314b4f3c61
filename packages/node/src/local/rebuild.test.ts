import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ReplicaRebuild, TokenSet } from "./rebuild.js";

const MAX = 0xffff_ffff;

describe("TokenSet", () => {
  it("holds wrapping ranges and the whole ring", () => {
    const set = new TokenSet();
    set.add({ start: MAX - 10, end: 5 });
    expect([set.has(MAX), set.has(0), set.has(5), set.has(6), set.has(MAX - 10)]).toEqual([true, true, true, false, false]);
    expect(set.covers({ start: MAX - 5, end: 2 })).toBe(true);
    expect(set.covers({ start: 3, end: 9 })).toBe(false);
    set.add({ start: 7, end: 7 });
    expect(set.covers({ start: 123, end: 45 })).toBe(true);
  });

  it("agrees with a model on random ranges (property)", () => {
    const token = fc.integer({ min: 0, max: 40 });
    fc.assert(
      fc.property(fc.array(fc.tuple(token, token), { maxLength: 8 }), fc.array(token, { minLength: 1, maxLength: 20 }), (ranges, probes) => {
        // A ring of 41 tokens scaled onto the real one keeps the wrap-around logic honest.
        const scale = (t: number) => (t === 40 ? MAX : t * 1000);
        const set = new TokenSet();
        const model = new Set<number>();
        for (const [a, b] of ranges) {
          set.add({ start: scale(a), end: scale(b) });
          for (const p of probes) {
            const t = scale(p);
            const inside = a === b || (a < b ? t > scale(a) && t <= scale(b) : t > scale(a) || t <= scale(b));
            if (inside) model.add(t);
          }
        }
        for (const p of probes) expect(set.has(scale(p))).toBe(model.has(scale(p)));
      }),
      { seed: 31, numRuns: 400 },
    );
  });
});

describe("ReplicaRebuild", () => {
  const range = { start: 100, end: 200 };
  const entries = [{ range, peers: ["b", "c"] }];

  it("serves everything when the node started with its data", () => {
    const rebuild = new ReplicaRebuild(false);
    expect(rebuild.active).toBe(false);
    expect(rebuild.serves(150)).toBe(true);
    expect(rebuild.pending(range)).toBe(false);
  });

  it("serves a range once it was exchanged with a co-replica that is not rebuilding too", () => {
    const rebuild = new ReplicaRebuild(true);
    expect(rebuild.serves(150)).toBe(false);
    rebuild.recordExchange(range, ["b", "c"], "b", "failed", false);
    rebuild.recordExchange(range, ["b", "c"], "b", "refused", false);
    expect(rebuild.serves(150)).toBe(false);
    rebuild.recordExchange(range, ["b", "c"], "b", "repaired", false);
    expect(rebuild.serves(150)).toBe(true);
    expect(rebuild.serves(250)).toBe(false);
    expect(rebuild.finishIfComplete(entries)).toBe(true);
    expect(rebuild.serves(250)).toBe(true);
    expect(rebuild.finishIfComplete(entries)).toBe(false);
  });

  it("does not count a co-replica that lost its data too, unless every co-replica did (a new cluster)", () => {
    const rebuild = new ReplicaRebuild(true);
    rebuild.recordExchange(range, ["b", "c"], "b", "in-sync", true);
    expect(rebuild.serves(150)).toBe(false);
    expect(rebuild.remaining(entries)).toBe(1);
    rebuild.recordExchange(range, ["b", "c"], "c", "in-sync", true);
    expect(rebuild.serves(150)).toBe(true);
    expect(rebuild.remaining(entries)).toBe(0);
  });

  it("has nothing to rebuild for ranges no other node replicates", () => {
    const rebuild = new ReplicaRebuild(true);
    expect(rebuild.finishIfComplete([{ range, peers: [] }])).toBe(true);
  });
});
