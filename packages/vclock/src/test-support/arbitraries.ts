import fc from "fast-check";
import type { VersionVector } from "../clock.js";
import { compareDots, MAX_CONTENT_TYPE_BYTES } from "../siblings.js";
import type { Sibling, SiblingSet } from "../siblings.js";

/** Clocks over a small node alphabet, so that generated clocks overlap and compare interestingly. */
export const smallClock: fc.Arbitrary<VersionVector> = fc
  .dictionary(fc.constantFrom("a", "b", "c", "d"), fc.integer({ min: 1, max: 5 }), { maxKeys: 4 })
  .map((entries) => new Map(Object.entries(entries)));

export const dotArbitrary = fc.record({ node: fc.constantFrom("a", "b", "c", "d", "e"), counter: fc.integer({ min: 1, max: 6 }) });

const nodeId = fc.oneof(fc.string({ minLength: 1, maxLength: 8, unit: "grapheme" }), fc.constantFrom("a", "b", "\uFEFFa", "é", "日本"));

/** Content types: common ones, the longest allowed, and any printable ASCII. */
export const contentTypeArbitrary: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom("text/plain", "application/json; charset=utf-8", "application/x-www-form-urlencoded", "x".repeat(MAX_CONTENT_TYPE_BYTES)),
  fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 40 }),
);

/** Any well-formed sibling set (every sibling's dot covered by the clock), not necessarily reachable by a history: exercises the encoding. */
export const anySiblingSet: fc.Arbitrary<SiblingSet> = fc
  .uniqueArray(fc.tuple(nodeId, fc.oneof(fc.integer({ min: 1, max: 300 }), fc.constant(Number.MAX_SAFE_INTEGER))), {
    maxLength: 5,
    selector: ([node]) => node,
  })
  .chain((entries) => {
    const clock = new Map(entries);
    const dots = entries.map(([node, counter]) =>
      fc
        .uniqueArray(fc.oneof(fc.integer({ min: 1, max: counter }), fc.constant(counter)), { maxLength: 3 })
        .map((counters) => counters.map((c) => ({ node, counter: c }))),
    );
    return fc.tuple(fc.constant(clock), fc.tuple(...dots));
  })
  .chain(([clock, dotsPerNode]) => {
    const dots = dotsPerNode.flat();
    const siblings = fc.tuple(
      ...dots.map((dot) =>
        fc
          .record({
            dot: fc.constant(dot),
            value: fc.option(fc.uint8Array({ maxLength: 200 }), { freq: 4 }),
            timestamp: fc.oneof(fc.nat(), fc.constant(1_700_000_000_000), fc.constant(Number.MAX_SAFE_INTEGER)),
            contentType: fc.option(contentTypeArbitrary, { nil: undefined, freq: 2 }),
          })
          // Live values only may carry a content type; none is left out rather than undefined.
          .map(({ contentType, ...sibling }): Sibling => (contentType === undefined || sibling.value === null ? sibling : { ...sibling, contentType })),
      ),
    );
    // Half the sets carry no content type at all (format 0x01), the others some (format 0x02).
    return fc.tuple(siblings, fc.boolean()).map(([list, typed]): SiblingSet => ({
      clock,
      siblings: [...(list as Sibling[])]
        .map(({ contentType, ...sibling }) => (typed && contentType !== undefined ? { ...sibling, contentType } : sibling))
        .sort((x, y) => compareDots(x.dot, y.dot)),
    }));
  });
