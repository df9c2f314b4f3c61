// The tree calls that take a peer's numbers and bytes during anti-entropy (merkle has no byte
// decoder of its own: the protobuf layer decodes, and these functions are what the decoded,
// arbitrary-but-well-typed values reach): the responder's hashAt / leafEntries on a peer's
// (level, index) queries, and the initiator's differingNodes / differingChildren / diffEntries on
// a peer's answers. Contract: a value, or a MerkleError; never a RangeError/TypeError, never a
// loop or an allocation sized by a peer's number.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { diffEntries, differingChildren, differingNodes, nodeHashes } from "./diff.js";
import { MerkleError } from "./errors.js";
import { HASH_BYTES } from "./hash.js";
import type { TokenRange } from "@dynamo-ts/ring";
import { MAX_DEPTH, MerkleTree } from "./tree.js";
import { digestOf, tokenOfKey } from "./test-support/arbitraries.js";

const SEED = 0x3e4c1e;

/** Runs `call`; a MerkleError is an accepted refusal, anything else thrown fails the test. */
function valueOrMerkleError<T>(call: () => T): T | undefined {
  try {
    return call();
  } catch (error) {
    expect(error).toBeInstanceOf(MerkleError);
    return undefined;
  }
}

/** What a uint32 field of a peer's protobuf message can hold, with the edges a hostile peer picks. */
const uint32 = fc.oneof(
  fc.integer({ min: 0, max: 40 }),
  fc.constantFrom(MAX_DEPTH, MAX_DEPTH + 1, 2 ** 16, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1),
  fc.integer({ min: 0, max: 2 ** 32 - 1 }),
);
/** Numbers no well-typed message carries, for the functions' own argument checks. */
const anyNumber = fc.oneof(uint32, fc.constantFrom(-1, -0, 0.5, Number.NaN, Number.POSITIVE_INFINITY, Number.MAX_SAFE_INTEGER, 2 ** 64));
const hash = fc.oneof(
  { weight: 4, arbitrary: fc.uint8Array({ minLength: HASH_BYTES, maxLength: HASH_BYTES }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 40 }) },
);

const ranges: TokenRange[] = [
  { start: 5, end: 5 },
  { start: 0, end: 1 },
  { start: 2 ** 32 - 10, end: 20 },
  { start: 1000, end: 2 ** 31 },
];

function filledTree(range: TokenRange, depth: number, keys: number): MerkleTree {
  const tree = new MerkleTree(range, { depth });
  for (let i = 0; i < keys; i++) tree.set(`k${i}`, tokenOfKey(range, `k${i}`), digestOf(`v${i}`));
  return tree;
}

const tree = fc
  .tuple(fc.constantFrom(...ranges), fc.integer({ min: 1, max: MAX_DEPTH }), fc.integer({ min: 0, max: 60 }))
  .map(([range, depth, keys]) => filledTree(range, depth, keys));

describe("tree reads driven by a peer's query", () => {
  it("hashAt / nodeHashes / leafEntries answer or throw MerkleError for any level and index", () => {
    fc.assert(
      fc.property(tree, anyNumber, fc.array(anyNumber, { maxLength: 20 }), (t, level, indices) => {
        for (const index of indices) {
          const h = valueOrMerkleError(() => t.hashAt(level, index));
          if (h !== undefined) expect(h.length).toBe(HASH_BYTES);
          valueOrMerkleError(() => t.leafEntries(index));
        }
        valueOrMerkleError(() => nodeHashes(t, level, indices));
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });
});

describe("a peer's answers on the initiator's side", () => {
  it("differingNodes / differingChildren accept or throw MerkleError, and only ever ask for valid nodes next", () => {
    fc.assert(
      fc.property(tree, anyNumber, fc.array(fc.record({ index: anyNumber, hash }), { maxLength: 24 }), (t, level, remote) => {
        valueOrMerkleError(() => differingNodes(t, level, remote));
        const next = valueOrMerkleError(() => differingChildren(t, level, remote));
        if (next === undefined) return;
        expect(next.length).toBeLessThanOrEqual(2 * remote.length);
        // What the initiator asks the peer for next is always a node the tree has.
        for (const index of next) expect(() => t.hashAt(level + 1, index)).not.toThrow();
      }),
      { seed: SEED + 1, numRuns: 2000 },
    );
  });

  it("diffEntries accepts or throws MerkleError on any entry lists (duplicates, odd keys, odd digests)", () => {
    const key = fc.oneof(fc.constantFrom("", "k1", "k2", "\ud800", "\uFEFF", "a\u0000b"), fc.string({ maxLength: 8 }));
    const entries = fc.array(fc.record({ key, digest: hash }), { maxLength: 12 });
    fc.assert(
      fc.property(tree, entries, fc.nat(), (t, remote, leaf) => {
        const local = t.depth === 0 ? [] : (valueOrMerkleError(() => t.leafEntries(leaf % 2 ** t.depth)) ?? []);
        const diff = valueOrMerkleError(() => diffEntries(local, remote));
        if (diff === undefined) return;
        const remoteKeys = new Set(remote.map((e) => e.key));
        for (const k of diff.onlyRemote) expect(remoteKeys.has(k)).toBe(true);
      }),
      { seed: SEED + 2, numRuns: 2000 },
    );
  });
});
