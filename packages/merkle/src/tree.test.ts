import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { rangeContains, type TokenRange } from "@dynamo-ts/ring";
import { HASH_BYTES, InvalidMerkleArgumentError, MerkleError, MerkleTree, TokenOutOfRangeError, entryHash } from "./index.js";
import { toHex } from "./hash.js";
import { digestArb, digestOf, keyArb, operationArb, rangeArb, spanOf, tokenAt, tokenOfKey } from "./test-support/arbitraries.js";
import { referenceEntryHash, referenceLeafOf, referenceTree } from "./test-support/reference.js";

const SEED = 20240611;
const TWO_32 = 2 ** 32;

function build(range: TokenRange, depth: number, entries: ReadonlyArray<{ key: string; digest: Uint8Array }>): MerkleTree {
  const tree = new MerkleTree(range, { depth });
  for (const { key, digest } of entries) tree.set(key, tokenOfKey(range, key), digest);
  return tree;
}

function allHashes(tree: MerkleTree): string[][] {
  const levels: string[][] = [];
  for (let level = 0; level <= tree.depth; level++) {
    levels.push(Array.from({ length: 2 ** level }, (_, index) => toHex(tree.hashAt(level, index))));
  }
  return levels;
}

describe("MerkleTree construction", () => {
  it("defaults to depth 10 (1024 leaves) and keeps the range", () => {
    const tree = new MerkleTree({ start: 5, end: 100 });
    expect(tree.depth).toBe(10);
    expect(tree.leaves).toBe(1024);
    expect(tree.range).toEqual({ start: 5, end: 100 });
    expect(tree.size).toBe(0);
  });

  it.each([0, 17, 2.5, Number.NaN, -1])("rejects depth %s", (depth) => {
    expect(() => new MerkleTree({ start: 0, end: 10 }, { depth })).toThrow(InvalidMerkleArgumentError);
  });

  it("accepts depths 1 and 16", () => {
    expect(new MerkleTree({ start: 0, end: 10 }, { depth: 1 }).leaves).toBe(2);
    expect(new MerkleTree({ start: 0, end: 10 }, { depth: 16 }).leaves).toBe(65536);
  });

  it.each([
    { start: -1, end: 10 },
    { start: 0, end: TWO_32 },
    { start: 0.5, end: 10 },
    { start: 0, end: Number.NaN },
  ])("rejects the range %j", (range) => {
    expect(() => new MerkleTree(range)).toThrow(InvalidMerkleArgumentError);
  });
});

describe("token placement", () => {
  it("covers (start, end]: start excluded, end included", () => {
    const tree = new MerkleTree({ start: 100, end: 200 }, { depth: 2 });
    expect(() => tree.leafOf(100)).toThrow(TokenOutOfRangeError);
    expect(tree.leafOf(101)).toBe(0);
    expect(tree.leafOf(200)).toBe(3);
    expect(() => tree.leafOf(201)).toThrow(TokenOutOfRangeError);
    expect(() => tree.set("k", 100, digestOf("x"))).toThrow(TokenOutOfRangeError);
    expect(() => tree.set("k", 201, digestOf("x"))).toThrow(/outside the tree's range \(100, 200\]/);
    tree.set("first", 101, digestOf("x"));
    tree.set("last", 200, digestOf("x"));
    expect(tree.size).toBe(2);
    expect(tree.leafEntries(0).map((e) => e.key)).toEqual(["first"]);
    expect(tree.leafEntries(3).map((e) => e.key)).toEqual(["last"]);
  });

  it("splits the span evenly: 100 tokens over 4 leaves, 25 each", () => {
    const tree = new MerkleTree({ start: 100, end: 200 }, { depth: 2 });
    const counts = [0, 0, 0, 0];
    for (let t = 101; t <= 200; t++) counts[tree.leafOf(t)]!++;
    expect(counts).toEqual([25, 25, 25, 25]);
  });

  it("handles a range that wraps around 2^32", () => {
    const range = { start: TWO_32 - 10, end: 10 };
    const tree = new MerkleTree(range, { depth: 1 });
    expect(() => tree.leafOf(TWO_32 - 10)).toThrow(TokenOutOfRangeError);
    expect(tree.leafOf(TWO_32 - 9)).toBe(0);
    expect(tree.leafOf(TWO_32 - 1)).toBe(0);
    expect(tree.leafOf(0)).toBe(0); // the 10th of 20 tokens: still the first half
    expect(tree.leafOf(1)).toBe(1); // the 11th

    expect(tree.leafOf(10)).toBe(1);
    expect(() => tree.leafOf(11)).toThrow(TokenOutOfRangeError);
    expect(() => tree.leafOf(TWO_32 / 2)).toThrow(TokenOutOfRangeError);
    expect(rangeContains(range, 0)).toBe(true);
    expect(rangeContains(range, 11)).toBe(false);
  });

  it("treats start === end as the whole ring, starting just after start", () => {
    const tree = new MerkleTree({ start: 1000, end: 1000 }, { depth: 2 });
    expect(tree.leafOf(1001)).toBe(0);
    expect(tree.leafOf(1000)).toBe(3); // the last token of the ring-wide span
    expect(tree.leafOf(TWO_32 - 1)).toBe(Math.floor(((TWO_32 - 1 - 1001) * 4) / TWO_32));
    expect(tree.leafOf(0)).toBe(3);
    const whole = new MerkleTree({ start: 0, end: 0 }, { depth: 16 });
    expect(whole.leafOf(1)).toBe(0);
    expect(whole.leafOf(0)).toBe(65535);
    expect(whole.leafOf(2 ** 16)).toBe(0);
    expect(whole.leafOf(2 ** 16 + 1)).toBe(1);
    for (const token of [0, 1, 12345, TWO_32 - 1]) expect(whole.covers(token)).toBe(true);
  });

  it.each([-1, TWO_32, 1.5, Number.NaN])("rejects the non-token %s", (token) => {
    const tree = new MerkleTree({ start: 0, end: 0 });
    expect(() => tree.leafOf(token)).toThrow(InvalidMerkleArgumentError);
  });

  it("agrees with an exact BigInt model of leaf placement, including at range edges", () => {
    fc.assert(
      fc.property(
        rangeArb,
        fc.integer({ min: 1, max: 16 }),
        fc.oneof(fc.integer({ min: 0, max: TWO_32 - 1 }), fc.constantFrom(0, 1, -1, -2)),
        (range, depth, rawOffset) => {
          const span = spanOf(range);
          const offset = ((rawOffset % span) + span) % span;
          const token = tokenAt(range, offset);
          const tree = new MerkleTree(range, { depth });
          const leaf = tree.leafOf(token);
          expect(leaf).toBe(referenceLeafOf(range.start, range.end, depth, token));
          expect(leaf).toBeGreaterThanOrEqual(0);
          expect(leaf).toBeLessThan(2 ** depth);
        },
      ),
      { seed: SEED, numRuns: 500 },
    );
  });

  it("throws for every token outside a range, never for one inside", () => {
    fc.assert(
      fc.property(rangeArb, fc.integer({ min: 0, max: TWO_32 - 1 }), (range, token) => {
        const inside = spanOf(range) > (((token - range.start - 1) % TWO_32) + TWO_32) % TWO_32;
        const tree = new MerkleTree(range, { depth: 4 });
        expect(tree.covers(token)).toBe(inside);
        if (inside) expect(() => tree.set("k", token, digestOf("x"))).not.toThrow();
        else expect(() => tree.set("k", token, digestOf("x"))).toThrow(TokenOutOfRangeError);
      }),
      { seed: SEED, numRuns: 300 },
    );
  });
});

describe("hashing", () => {
  it("keeps hash format v1 stable (golden values)", () => {
    expect(toHex(entryHash("key", new Uint8Array([1, 2, 3])))).toBe(toHex(referenceEntryHash("key", new Uint8Array([1, 2, 3]))));
    const range = { start: 0, end: 1000 };
    const tree = new MerkleTree(range, { depth: 3 });
    tree.set("alpha", 10, digestOf("a1"));
    tree.set("beta", 500, digestOf("b1"));
    tree.set("gamma", 999, digestOf("c1"));
    // Pinned: changing any of these means a new HASH_FORMAT_VERSION.
    expect(toHex(entryHash("key", new Uint8Array([1, 2, 3])))).toBe("508ec2b5cd6a2c09e7b108608f78989d");
    expect(toHex(new MerkleTree(range, { depth: 3 }).root())).toBe("f09d474cbf7f6c2c0ceeae45af043722");
    expect(toHex(tree.root())).toBe("19a5187e13ef3460486165d4f5b1e391");
  });

  it("has 16-byte hashes, a zero empty leaf, and the same root for every empty tree of a depth", () => {
    const a = new MerkleTree({ start: 1, end: 2 }, { depth: 5 });
    const b = new MerkleTree({ start: 7, end: 7 }, { depth: 5 });
    expect(a.root()).toHaveLength(HASH_BYTES);
    expect(a.hashAt(5, 3)).toEqual(new Uint8Array(16));
    expect(a.root()).toEqual(b.root());
    expect(a.root()).not.toEqual(new MerkleTree({ start: 1, end: 2 }, { depth: 4 }).root());
  });

  it("matches the naive reference model at every node after random operations", () => {
    fc.assert(
      fc.property(rangeArb, fc.integer({ min: 1, max: 5 }), fc.array(operationArb, { maxLength: 40 }), (range, depth, ops) => {
        const tree = new MerkleTree(range, { depth });
        const final = new Map<string, Uint8Array>();
        for (const { key, digest } of ops) {
          tree.set(key, tokenOfKey(range, key), digest);
          if (digest === undefined) final.delete(key);
          else final.set(key, digest);
        }
        const expected = referenceTree(
          range.start,
          range.end,
          depth,
          [...final].map(([key, digest]) => ({ key, token: tokenOfKey(range, key), digest })),
        ).map((level) => level.map(toHex));
        expect(allHashes(tree)).toEqual(expected);
        expect(tree.size).toBe(final.size);
      }),
      { seed: SEED, numRuns: 150 },
    );
  });
});

describe("order independence and incremental updates", () => {
  const entriesArb = fc.uniqueArray(fc.record({ key: keyArb, digest: digestArb }), { selector: (e) => e.key, maxLength: 40 });

  it("gives the same root for the same data whatever the insert order", () => {
    fc.assert(
      fc.property(rangeArb, fc.integer({ min: 1, max: 12 }), entriesArb, fc.integer(), (range, depth, entries, shuffleSeed) => {
        const shuffled = fc.sample(fc.shuffledSubarray(entries, { minLength: entries.length, maxLength: entries.length }), {
          numRuns: 1,
          seed: shuffleSeed,
        })[0]!;
        expect(build(range, depth, shuffled).root()).toEqual(build(range, depth, entries).root());
      }),
      { seed: SEED, numRuns: 150 },
    );
  });

  it("returns to the previous root after inserting then removing a key", () => {
    fc.assert(
      fc.property(rangeArb, entriesArb, keyArb, digestArb, (range, entries, key, digest) => {
        const tree = build(
          range,
          6,
          entries.filter((e) => e.key !== key),
        );
        const before = allHashes(tree);
        tree.set(key, tokenOfKey(range, key), digest);
        expect(tree.get(key)?.digest).toEqual(digest);
        tree.set(key, tokenOfKey(range, key), undefined);
        expect(allHashes(tree)).toEqual(before);
        expect(tree.get(key)).toBeUndefined();
      }),
      { seed: SEED, numRuns: 100 },
    );
  });

  it("replacing a digest equals inserting the final digest directly", () => {
    fc.assert(
      fc.property(rangeArb, entriesArb, keyArb, digestArb, digestArb, (range, entries, key, first, second) => {
        const others = entries.filter((e) => e.key !== key);
        const replaced = build(range, 6, others);
        replaced.set(key, tokenOfKey(range, key), first);
        replaced.root(); // force the first digest into the cached hashes
        replaced.set(key, tokenOfKey(range, key), second);
        const direct = build(range, 6, [...others, { key, digest: second }]);
        expect(allHashes(replaced)).toEqual(allHashes(direct));
        expect(replaced.size).toBe(direct.size);
      }),
      { seed: SEED, numRuns: 100 },
    );
  });

  it("incremental updates (with reads interleaved) equal a rebuild from the final set at every node", () => {
    const stepArb = fc.oneof(
      { weight: 5, arbitrary: operationArb.map((op) => ({ kind: "set" as const, ...op })) },
      { weight: 1, arbitrary: fc.record({ level: fc.nat(), index: fc.nat() }).map((read) => ({ kind: "read" as const, ...read })) },
    );
    fc.assert(
      fc.property(rangeArb, fc.integer({ min: 1, max: 7 }), fc.array(stepArb, { maxLength: 80 }), (range, depth, steps) => {
        const tree = new MerkleTree(range, { depth });
        const final = new Map<string, Uint8Array>();
        for (const step of steps) {
          if (step.kind === "read") {
            const level = step.level % (depth + 1);
            tree.hashAt(level, step.index % 2 ** level);
            continue;
          }
          tree.set(step.key, tokenOfKey(range, step.key), step.digest);
          if (step.digest === undefined) final.delete(step.key);
          else final.set(step.key, step.digest);
        }
        const rebuilt = build(
          range,
          depth,
          [...final].map(([key, digest]) => ({ key, digest })),
        );
        expect(allHashes(tree)).toEqual(allHashes(rebuilt));
        expect(tree.size).toBe(final.size);
        for (let leaf = 0; leaf < 2 ** depth; leaf++) {
          expect(tree.leafEntries(leaf)).toEqual(rebuilt.leafEntries(leaf));
        }
      }),
      { seed: SEED, numRuns: 150 },
    );
  });
});

describe("MerkleTree behaviour", () => {
  const range = { start: 0, end: 1 << 20 };

  it("recomputes lazily: a burst of writes to one leaf costs one rehash of its path", () => {
    const tree = new MerkleTree(range, { depth: 10 });
    tree.root();
    expect(tree.rehashes).toBe(0); // an empty tree hashes nothing
    for (let i = 0; i < 100; i++) tree.set(`k${i}`, 5 + i, digestOf(`v${i}`)); // all in leaf 0
    expect(tree.rehashes).toBe(0);
    tree.root();
    expect(tree.rehashes).toBe(10); // one hash per inner node on the path
    tree.root();
    expect(tree.rehashes).toBe(10);
    tree.set("k1", 6, digestOf("changed"));
    tree.set("far", range.end, digestOf("x")); // last leaf: a second path sharing only the root
    tree.root();
    expect(tree.rehashes).toBe(10 + 10 + 9);
  });

  it("leaves hashes untouched when a key is set to the digest it already has, or an absent key is removed", () => {
    const tree = new MerkleTree(range, { depth: 4 });
    tree.set("a", 1, digestOf("x"));
    const root = tree.root();
    const rehashes = tree.rehashes;
    tree.set("a", 1, digestOf("x"));
    tree.set("missing", 2, undefined);
    expect(tree.root()).toEqual(root);
    expect(tree.rehashes).toBe(rehashes);
    expect(tree.size).toBe(1);
  });

  it("returns to the empty root when the last key goes", () => {
    const tree = new MerkleTree(range, { depth: 8 });
    const empty = tree.root();
    tree.set("a", 1, digestOf("x"));
    tree.set("b", 900_000, digestOf("y"));
    expect(tree.root()).not.toEqual(empty);
    tree.set("a", 1, undefined);
    tree.set("b", 900_000, undefined);
    expect(tree.size).toBe(0);
    expect(tree.root()).toEqual(empty);
    expect(tree.leafEntries(0)).toEqual([]);
    tree.set("c", 2, digestOf("z")); // storage is allocated again after the release
    const fresh = new MerkleTree(range, { depth: 8 });
    fresh.set("c", 2, digestOf("z"));
    expect(allHashes(tree)).toEqual(allHashes(fresh));
  });

  it("copies digests in and out, so callers cannot corrupt the tree", () => {
    const tree = new MerkleTree(range, { depth: 4 });
    const digest = digestOf("x");
    tree.set("a", 1, digest);
    const root = tree.root();
    digest.fill(0);
    tree.leafEntries(0)[0]!.digest.fill(0);
    tree.get("a")!.digest.fill(0);
    tree.root().fill(0);
    tree.hashAt(4, 0).fill(0);
    expect(tree.root()).toEqual(root);
    expect(tree.get("a")!.digest).toEqual(digestOf("x"));
  });

  it("lists a leaf's entries sorted by key with tokens and digests", () => {
    const tree = new MerkleTree({ start: 0, end: 15 }, { depth: 2 }); // leaf 0 = tokens 1..4
    tree.set("b", 2, digestOf("2"));
    tree.set("a", 4, digestOf("4"));
    tree.set("c", 1, digestOf("1"));
    tree.set("d", 5, digestOf("5"));
    expect(tree.leafEntries(0)).toEqual([
      { key: "a", token: 4, digest: digestOf("4") },
      { key: "b", token: 2, digest: digestOf("2") },
      { key: "c", token: 1, digest: digestOf("1") },
    ]);
    expect(tree.leafEntries(1)).toEqual([{ key: "d", token: 5, digest: digestOf("5") }]);
    expect(() => tree.leafEntries(4)).toThrow(InvalidMerkleArgumentError);
  });

  it("rejects a key set again under a different token, ill-formed keys and non-byte digests", () => {
    const tree = new MerkleTree(range, { depth: 4 });
    tree.set("a", 1, digestOf("x"));
    expect(() => tree.set("a", 2, digestOf("y"))).toThrow(/already in the tree with token 1, not 2/);
    expect(() => tree.set("a", 2, undefined)).toThrow(InvalidMerkleArgumentError);
    expect(() => tree.set("\uD800", 3, digestOf("y"))).toThrow(/lone surrogate/);
    expect(() => tree.set("b", 3, "digest" as unknown as Uint8Array)).toThrow(InvalidMerkleArgumentError);
    expect(tree.size).toBe(1);
  });

  it("rejects hashAt outside the tree", () => {
    const tree = new MerkleTree(range, { depth: 3 });
    for (const [level, index] of [
      [-1, 0],
      [4, 0],
      [0, 1],
      [3, 8],
      [2, -1],
      [1, 0.5],
    ] as const) {
      expect(() => tree.hashAt(level, index)).toThrow(InvalidMerkleArgumentError);
    }
    expect(() => tree.hashAt(3, 7)).not.toThrow();
  });

  it("throws errors of the MerkleError family with their class names", () => {
    const tree = new MerkleTree({ start: 0, end: 10 });
    try {
      tree.leafOf(11);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(MerkleError);
      expect(error).toBeInstanceOf(TokenOutOfRangeError);
      expect((error as Error).name).toBe("TokenOutOfRangeError");
    }
  });
});
