import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Ring, RingError, TOKEN_SPACE, hashKey, rangeContains, replicaRanges } from "./index.js";

describe("replicaRanges", () => {
  const ringArb = fc.record({
    nodes: fc.integer({ min: 1, max: 6 }),
    vnodes: fc.integer({ min: 1, max: 12 }),
    n: fc.integer({ min: 1, max: 4 }),
    probes: fc.array(fc.integer({ min: 0, max: TOKEN_SPACE - 1 }), { minLength: 20, maxLength: 20 }),
  });

  it("cover exactly the tokens a node replicates, each with one replica set that every co-replica computes alike", () => {
    fc.assert(
      fc.property(ringArb, ({ nodes, vnodes, n, probes }) => {
        const ids = Array.from({ length: nodes }, (_, i) => `node-${i}`);
        const ring = new Ring(ids, { vnodes });
        const rangesOf = new Map(ids.map((id) => [id, replicaRanges(ring, id, n)]));
        const tokens = [...probes, ...ring.segments().flatMap((s) => [s.end, (s.start + 1) % TOKEN_SPACE])];
        for (const id of ids) {
          const ranges = rangesOf.get(id)!;
          for (const token of tokens) {
            const replicas = [...ring.preferenceListForToken(token, n)].sort();
            const holding = ranges.filter((r) => rangeContains(r.range, token));
            // In exactly one range when this node replicates the token, in none otherwise...
            expect(holding.length).toBe(replicas.includes(id) ? 1 : 0);
            // ...and that range's replicas are the token's.
            if (holding[0]) expect(holding[0].replicas).toEqual(replicas);
          }
          for (const { range, replicas } of ranges) {
            // Every co-replica has the very same range (same bounds, same replicas).
            for (const peer of replicas) expect(rangesOf.get(peer)).toContainEqual({ range, replicas });
          }
          // Maximal: two of this node's ranges that touch have different replica sets.
          for (const a of ranges) for (const b of ranges) if (a !== b && a.range.end === b.range.start) expect(a.replicas).not.toEqual(b.replicas);
        }
      }),
      { seed: 11, numRuns: 60 },
    );
  });

  it("is one whole-ring range when every node replicates everything, and empty for a node outside the ring", () => {
    const ring = new Ring(["a", "b", "c"], { vnodes: 16 });
    const [only, ...rest] = replicaRanges(ring, "b", 3);
    expect(rest).toEqual([]);
    expect(only!.range.start).toBe(only!.range.end);
    expect(only!.replicas).toEqual(["a", "b", "c"]);
    expect(replicaRanges(ring, "z", 3)).toEqual([]);
  });

  it("are ordered by end token and cover each segment once per replica", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 7 }),
        fc.integer({ min: 1, max: 24 }),
        fc.integer({ min: 1, max: 5 }),
        (nodes, vnodes, n) => {
          const ring = new Ring(nodes, { vnodes });
          const segments = ring.segments();
          const coverage = new Array<number>(segments.length).fill(0);
          for (const node of ring.nodes) {
            const ranges = replicaRanges(ring, node, n).map((r) => r.range);
            for (let i = 1; i < ranges.length; i++) expect(ranges[i]!.end).toBeGreaterThan(ranges[i - 1]!.end);
            segments.forEach((segment, s) => {
              const inRanges = ranges.filter((range) => rangeContains(range, segment.end)).length;
              expect(inRanges).toBeLessThanOrEqual(1);
              expect(inRanges === 1).toBe(ring.replicasOf(segment, n).includes(node));
              coverage[s]! += inRanges;
            });
          }
          expect(coverage.every((count) => count === Math.min(n, ring.nodes.length))).toBe(true);
        },
      ),
      { numRuns: 120, seed: 10 },
    );
  });

  it("joins the last and first segments into one range across 2^32 when their replicas are the same", () => {
    const seen: boolean[] = [];
    for (const vnodes of [32, 64]) {
      const ring = new Ring(["node-1", "node-2", "node-3", "node-4", "node-5", "node-6"], { vnodes });
      const segments = ring.segments();
      const replicasOfFirst = [...ring.replicasOf(segments[0]!, 2)].sort();
      const sameAtBothEnds = replicasOfFirst.join() === [...ring.replicasOf(segments.at(-1)!, 2)].sort().join();
      seen.push(sameAtBothEnds);
      for (const node of ring.nodes) {
        const wrapping = replicaRanges(ring, node, 2).filter(({ range }) => range.start > range.end);
        // Segment 0 wraps, so exactly its replicas hold one range across the top of the token space...
        expect(wrapping).toHaveLength(replicasOfFirst.includes(node) ? 1 : 0);
        // ...which takes in the last segment too when that has the same replicas.
        if (wrapping[0]) expect(rangeContains(wrapping[0].range, segments.at(-1)!.end)).toBe(sameAtBothEnds);
      }
    }
    expect(seen).toEqual([false, true]); // both cases met
  });

  it("handle one-segment rings, vnode token collisions, and reject a replica count below 1", () => {
    const t = hashKey("solo#0");
    expect(replicaRanges(new Ring(["solo"], { vnodes: 1 }), "solo", 3)).toEqual([{ range: { start: t, end: t }, replicas: ["solo"] }]);
    // Two node ids whose vnode 0 tokens collide: one segment, owned by the lower id.
    const [low, high] = ["n100940", "n16724"];
    const collision = hashKey(`${low}#0`);
    const ring = new Ring([low!, high!], { vnodes: 1 });
    expect(replicaRanges(ring, high!, 1)).toEqual([]);
    expect(replicaRanges(ring, high!, 2)).toEqual([{ range: { start: collision, end: collision }, replicas: [low, high] }]);
    expect(() => replicaRanges(new Ring(["a", "b"], { vnodes: 4 }), "a", 0)).toThrow(RingError);
  });
});
