import fc from "fast-check";
import type { VersionVector } from "../clock.js";
import { compareDots } from "../siblings.js";
import type { Sibling, SiblingSet } from "../siblings.js";

/** Clocks over a small node alphabet, so that generated clocks overlap and compare interestingly. */
export const smallClock: fc.Arbitrary<VersionVector> = fc
  .dictionary(fc.constantFrom("a", "b", "c", "d"), fc.integer({ min: 1, max: 5 }), { maxKeys: 4 })
  .map((entries) => new Map(Object.entries(entries)));

export const dotArbitrary = fc.record({ node: fc.constantFrom("a", "b", "c", "d", "e"), counter: fc.integer({ min: 1, max: 6 }) });

const nodeId = fc.oneof(fc.string({ minLength: 1, maxLength: 8, unit: "grapheme" }), fc.constantFrom("a", "b", "\uFEFFa", "é", "日本"));

/** Any well-formed sibling set (every sibling's dot covered by the clock), not necessarily reachable by a history: exercises the encoding. */
export const anySiblingSet: fc.Arbitrary<SiblingSet> = fc
  .uniqueArray(fc.tuple(nodeId, fc.oneof(fc.integer({ min: 1, max: 300 }), fc.constant(Number.MAX_SAFE_INTEGER))), {
    maxLength: 5,
    selector: ([node]) => node,
  })
  .chain((entries) => {
    const clock = new Map(entries);
    const dots = entries.map(([node, counter]) =>
      fc.uniqueArray(fc.oneof(fc.integer({ min: 1, max: counter }), fc.constant(counter)), { maxLength: 3 }).map((counters) => counters.map((c) => ({ node, counter: c }))),
    );
    return fc.tuple(fc.constant(clock), fc.tuple(...dots));
  })
  .chain(([clock, dotsPerNode]) => {
    const dots = dotsPerNode.flat();
    const siblings = fc.tuple(
      ...dots.map((dot) =>
        fc.record({
          dot: fc.constant(dot),
          value: fc.option(fc.uint8Array({ maxLength: 200 }), { freq: 4 }),
          timestamp: fc.oneof(fc.nat(), fc.constant(1_700_000_000_000), fc.constant(Number.MAX_SAFE_INTEGER)),
        }),
      ),
    );
    return siblings.map((list): SiblingSet => ({ clock, siblings: [...(list as Sibling[])].sort((x, y) => compareDots(x.dot, y.dot)) }));
  });
