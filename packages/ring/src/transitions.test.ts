import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  Ring,
  RingError,
  RingTransition,
  TOKEN_SPACE,
  hashKey,
  pendingOwners,
  rangeContains,
  rangeSize,
  rangeTransfers,
  transfersTo,
  writeTargets,
} from "./index.js";

const ids = (count: number, prefix = "node") => Array.from({ length: count }, (_, i) => `${prefix}-${i}`);

/** Two rings over overlapping node sets: some nodes only settled (leaving), some only pending (joining). */
const ringPairArb = fc
  .record({
    common: fc.integer({ min: 0, max: 5 }),
    joining: fc.integer({ min: 0, max: 2 }),
    leaving: fc.integer({ min: 0, max: 2 }),
    vnodes: fc.integer({ min: 1, max: 10 }),
    n: fc.integer({ min: 1, max: 4 }),
    probes: fc.array(fc.integer({ min: 0, max: TOKEN_SPACE - 1 }), { minLength: 30, maxLength: 30 }),
  })
  .filter(({ common, joining, leaving }) => common + joining > 0 && common + leaving > 0);

describe("pendingOwners / writeTargets", () => {
  it("are the pending preference list's nodes outside the settled one; counted is the settled list", () => {
    const settled = new Ring(ids(3), { vnodes: 16 });
    const pending = settled.withNode("node-3").withNode("node-4");
    for (let k = 0; k < 500; k++) {
      const key = `key-${k}`;
      const targets = writeTargets(settled, pending, key, 3);
      expect(targets.counted).toEqual(settled.preferenceList(key, 3));
      expect(targets.extra).toEqual(pendingOwners(settled, pending, key, 3));
      const union = new Set([...targets.counted, ...targets.extra]);
      for (const node of pending.preferenceList(key, 3)) expect(union.has(node)).toBe(true);
      for (const node of targets.extra) expect(["node-3", "node-4"]).toContain(node);
    }
  });

  it("are empty when nothing is changing", () => {
    const ring = new Ring(ids(4), { vnodes: 8 });
    for (let k = 0; k < 200; k++) expect(pendingOwners(ring, ring, `k${k}`, 3)).toEqual([]);
    expect(rangeTransfers(ring, ring, 3)).toEqual([]);
  });

  it("refuse a bad n", () => {
    const ring = new Ring(ids(2));
    expect(() => pendingOwners(ring, ring, "k", 0)).toThrow(RingError);
    expect(() => rangeTransfers(ring, ring, 1.5)).toThrow(RingError);
  });
});

describe("rangeTransfers", () => {
  it("cover exactly the (token, gaining node) pairs, each once, with the settled replicas as sources", () => {
    fc.assert(
      fc.property(ringPairArb, ({ common, joining, leaving, vnodes, n, probes }) => {
        const settled = new Ring([...ids(common), ...ids(leaving, "leaving")], { vnodes });
        const pending = new Ring([...ids(common), ...ids(joining, "joining")], { vnodes });
        const transfers = rangeTransfers(settled, pending, n);
        const boundaryTokens = [...settled.segments(), ...pending.segments()].flatMap((s) => [s.end, (s.start + 1) % TOKEN_SPACE]);
        for (const token of [...probes, ...boundaryTokens]) {
          const before = settled.preferenceListForToken(token, n);
          const gainers = pending.preferenceListForToken(token, n).filter((node) => !before.includes(node));
          for (const node of pending.nodes) {
            const holding = transfers.filter((t) => t.target === node && rangeContains(t.range, token));
            expect(holding.length).toBe(gainers.includes(node) ? 1 : 0);
            if (holding[0]) expect(holding[0].sources).toEqual(before);
          }
        }
        // Maximal runs: two touching ranges of one target have different sources.
        for (const a of transfers)
          for (const b of transfers) if (a !== b && a.target === b.target && a.range.end === b.range.start) expect(a.sources).not.toEqual(b.sources);
      }),
      { seed: 13, numRuns: 80 },
    );
  });

  it("a join moves data only to the new node, about N / (nodes after the join) of the ring", () => {
    const settled = new Ring(ids(5), { vnodes: 256 });
    const pending = settled.withNode("node-5");
    const transfers = rangeTransfers(settled, pending, 3);
    expect(new Set(transfers.map((t) => t.target))).toEqual(new Set(["node-5"]));
    const moved = transfers.reduce((sum, t) => sum + rangeSize(t.range), 0) / TOKEN_SPACE;
    expect(moved).toBeGreaterThan(0.4);
    expect(moved).toBeLessThan(0.6); // ideal 3/6
  });

  it("a removal moves the removed node's replicas to the others and never to it", () => {
    const settled = new Ring(ids(5), { vnodes: 64 });
    const pending = settled.withoutNode("node-2");
    const transfers = transfersTo(settled, pending, "node-0", 3);
    expect(transfers.length).toBeGreaterThan(0);
    for (const transfer of rangeTransfers(settled, pending, 3)) {
      expect(transfer.target).not.toBe("node-2");
      expect(transfer.sources).toContain("node-2");
    }
  });

  it("name the whole ring as { start: t, end: t } when a node gains everything", () => {
    const settled = new Ring(["a"], { vnodes: 4 });
    const pending = new Ring(["b"], { vnodes: 4 });
    const [only, ...rest] = rangeTransfers(settled, pending, 1);
    expect(rest).toEqual([]);
    expect(only!.target).toBe("b");
    expect(only!.range.start).toBe(only!.range.end);
    expect(only!.sources).toEqual(["a"]);
    expect(rangeContains(only!.range, hashKey("anything"))).toBe(true);
  });
});

describe("RingTransition", () => {
  it("names no extra owners when both rings have the same nodes and vnodes, and the pending owners when only the vnodes differ", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 3 }),
        fc.array(fc.string(), { minLength: 20, maxLength: 20 }),
        (count, vnodes, n, keys) => {
          const settled = new Ring(ids(count), { vnodes });
          const same = new RingTransition(settled, new Ring([...ids(count)].reverse(), { vnodes }));
          const revnoded = new Ring(ids(count), { vnodes: vnodes + 1 });
          const other = new RingTransition(settled, revnoded);
          for (const key of keys) {
            expect(same.extraOwners(key, n)).toEqual([]);
            expect(other.extraOwners(key, n)).toEqual(pendingOwners(settled, revnoded, key, n));
          }
        },
      ),
      { seed: 23, numRuns: 100 },
    );
  });

  it("joins finishing in any order: a joiner is an extra owner and copies every token it owns in any intermediate ring", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 3 }),
        fc.array(fc.integer({ min: 0, max: TOKEN_SPACE - 1 }), { minLength: 40, maxLength: 40 }),
        (common, joining, vnodes, n, probes) => {
          const settled = new Ring(ids(common), { vnodes });
          const joiners = ids(joining, "joining");
          const pending = new Ring([...ids(common), ...joiners], { vnodes });
          const transition = new RingTransition(settled, pending);
          // Every subset of finished joins is a ring some node may read from.
          for (let mask = 1; mask < 1 << joining; mask++) {
            const finished = joiners.filter((_, i) => (mask & (1 << i)) !== 0);
            const intermediate = new Ring([...ids(common), ...finished], { vnodes });
            for (const token of probes) {
              const key = `probe-${token}`;
              const owners = intermediate.preferenceList(key, n);
              const extra = transition.extraOwners(key, n);
              for (const joiner of finished) {
                if (!owners.includes(joiner)) continue;
                expect(extra).toContain(joiner);
                const copies = transition.transfersTo(joiner, n).filter((t) => rangeContains(t.range, hashKey(key)));
                expect(copies.length).toBeGreaterThan(0);
              }
            }
          }
        },
      ),
      { seed: 17, numRuns: 40 },
    );
  });

  it("transfersFrom covers, for every key a departing node replicates, each node that gains the key, with the departing node among the sources", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 6 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 3 }),
        fc.array(fc.integer({ min: 0, max: TOKEN_SPACE - 1 }), { minLength: 40, maxLength: 40 }),
        (count, vnodes, n, probes) => {
          const all = ids(count);
          const leaver = all[count - 1]!;
          const settled = new Ring(all, { vnodes });
          const pending = new Ring(all.slice(0, -1), { vnodes });
          const transition = new RingTransition(settled, pending);
          const from = transition.transfersFrom(leaver, n);
          for (const t of from) expect(t.sources).toContain(leaver);
          for (const token of probes) {
            const before = settled.preferenceListForToken(token, n);
            const gainers = pending.preferenceListForToken(token, n).filter((node) => !before.includes(node));
            if (!before.includes(leaver)) expect(gainers).toEqual([]);
            for (const gainer of gainers) {
              expect(from.some((t) => t.target === gainer && rangeContains(t.range, token))).toBe(true);
            }
          }
        },
      ),
      { seed: 23, numRuns: 60 },
    );
  });
});
