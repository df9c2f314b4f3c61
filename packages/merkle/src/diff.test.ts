import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { TokenRange } from "@dynamo-ts/ring";
import {
  InvalidMerkleArgumentError,
  MerkleTree,
  TreeShapeMismatchError,
  diffEntries,
  diffTrees,
  differingChildren,
  differingNodes,
  nodeHashes,
} from "./index.js";
import { digestArb, digestOf, keyArb, rangeArb, tokenOfKey } from "./test-support/arbitraries.js";

const SEED = 20240612;

function build(range: TokenRange, depth: number, entries: ReadonlyMap<string, Uint8Array>): MerkleTree {
  const tree = new MerkleTree(range, { depth });
  for (const [key, digest] of entries) tree.set(key, tokenOfKey(range, key), digest);
  return tree;
}

type Modification =
  { kind: "add"; key: string; digest: Uint8Array } | { kind: "remove"; index: number } | { kind: "change"; index: number; digest: Uint8Array };

const modificationArb: fc.Arbitrary<Modification> = fc.oneof(
  fc.record({ kind: fc.constant("add" as const), key: keyArb, digest: digestArb }),
  fc.record({ kind: fc.constant("remove" as const), index: fc.nat() }),
  fc.record({ kind: fc.constant("change" as const), index: fc.nat(), digest: digestArb }),
);

function applyModifications(base: ReadonlyMap<string, Uint8Array>, modifications: readonly Modification[]): Map<string, Uint8Array> {
  const result = new Map(base);
  for (const modification of modifications) {
    if (modification.kind === "add") {
      result.set(modification.key, modification.digest);
      continue;
    }
    const keys = [...result.keys()];
    if (keys.length === 0) continue;
    const key = keys[modification.index % keys.length]!;
    if (modification.kind === "remove") result.delete(key);
    else result.set(key, modification.digest);
  }
  return result;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** The keys present on one side only, or with different digests. */
function trueDifference(a: ReadonlyMap<string, Uint8Array>, b: ReadonlyMap<string, Uint8Array>) {
  const onlyLocal = [...a.keys()].filter((key) => !b.has(key)).sort();
  const onlyRemote = [...b.keys()].filter((key) => !a.has(key)).sort();
  const different = [...a]
    .filter(([key, digest]) => b.has(key) && !sameBytes(digest, b.get(key)!))
    .map(([key]) => key)
    .sort();
  return { onlyLocal, onlyRemote, different };
}

describe("diffTrees + diffEntries", () => {
  const keyedBaseArb = fc.uniqueArray(fc.record({ key: fc.oneof(keyArb, fc.string({ maxLength: 8 })), digest: digestArb }), {
    selector: (e) => e.key,
    maxLength: 60,
  });

  it("finds exactly the symmetric difference of two replicas' (key, digest) sets", () => {
    fc.assert(
      fc.property(
        rangeArb,
        fc.integer({ min: 1, max: 10 }),
        keyedBaseArb,
        fc.array(modificationArb, { maxLength: 8 }),
        fc.array(modificationArb, { maxLength: 8 }),
        (range, depth, baseEntries, localChanges, remoteChanges) => {
          const base = new Map(baseEntries.map(({ key, digest }) => [key, digest]));
          const localSet = applyModifications(base, localChanges);
          const remoteSet = applyModifications(base, remoteChanges);
          const local = build(range, depth, localSet);
          const remote = build(range, depth, remoteSet);

          const { leaves, hashesCompared } = diffTrees(local, remote);
          const found = { onlyLocal: [] as string[], onlyRemote: [] as string[], different: [] as string[] };
          for (const leaf of leaves) {
            const diff = diffEntries(local.leafEntries(leaf), remote.leafEntries(leaf));
            expect(diff.onlyLocal.length + diff.onlyRemote.length + diff.different.length).toBeGreaterThan(0);
            found.onlyLocal.push(...diff.onlyLocal);
            found.onlyRemote.push(...diff.onlyRemote);
            found.different.push(...diff.different);
          }
          const expected = trueDifference(localSet, remoteSet);
          expect({
            onlyLocal: found.onlyLocal.sort(),
            onlyRemote: found.onlyRemote.sort(),
            different: found.different.sort(),
          }).toEqual(expected);

          // Exactly the leaves holding a differing key are reported, in ascending order.
          const expectedLeaves = [
            ...new Set([...expected.onlyLocal, ...expected.onlyRemote, ...expected.different].map((key) => local.leafOf(tokenOfKey(range, key)))),
          ].sort((a, b) => a - b);
          expect(leaves).toEqual(expectedLeaves);
          // The descent never compares more than every node once.
          expect(hashesCompared).toBeLessThanOrEqual(2 ** (depth + 1) - 1);
          if (expectedLeaves.length === 0) expect(hashesCompared).toBe(1);
        },
      ),
      { seed: SEED, numRuns: 200 },
    );
  });

  it("compares only the roots of identical trees and reports no leaves", () => {
    const range = { start: 42, end: 42 };
    const entries = new Map(Array.from({ length: 500 }, (_, i) => [`key-${i}`, digestOf(`v${i}`)] as const));
    const a = build(range, 10, entries);
    const b = build(range, 10, new Map([...entries].reverse()));
    expect(diffTrees(a, b)).toEqual({ leaves: [], hashesCompared: 1 });
    expect(diffTrees(new MerkleTree(range), new MerkleTree(range))).toEqual({ leaves: [], hashesCompared: 1 });
  });

  it.each([1, 4, 10, 16])("descends a single path (2*depth+1 hashes) for one differing key at depth %i", (depth) => {
    const range = { start: 0, end: 0 };
    const entries = new Map(Array.from({ length: 200 }, (_, i) => [`key-${i}`, digestOf(`v${i}`)] as const));
    const a = build(range, depth, entries);
    const b = build(range, depth, entries);
    b.set("key-7", tokenOfKey(range, "key-7"), digestOf("newer"));
    const { leaves, hashesCompared } = diffTrees(a, b);
    expect(leaves).toEqual([a.leafOf(tokenOfKey(range, "key-7"))]);
    expect(hashesCompared).toBe(2 * depth + 1);
    expect(diffEntries(a.leafEntries(leaves[0]!), b.leafEntries(leaves[0]!))).toEqual({
      onlyLocal: [],
      onlyRemote: [],
      different: ["key-7"],
    });
  });

  it("refuses to compare trees of different ranges or depths", () => {
    const a = new MerkleTree({ start: 0, end: 100 }, { depth: 4 });
    expect(() => diffTrees(a, new MerkleTree({ start: 0, end: 101 }, { depth: 4 }))).toThrow(TreeShapeMismatchError);
    expect(() => diffTrees(a, new MerkleTree({ start: 1, end: 100 }, { depth: 4 }))).toThrow(TreeShapeMismatchError);
    expect(() => diffTrees(a, new MerkleTree({ start: 0, end: 100 }, { depth: 5 }))).toThrow(/depth 4 with one over \(0, 100\] depth 5/);
  });
});

describe("remote descent", () => {
  const range = { start: 1000, end: 5000 };

  it("walks level by level with hashes a peer serves, asking only for children of differing nodes", () => {
    const local = new MerkleTree(range, { depth: 3 });
    const peer = new MerkleTree(range, { depth: 3 });
    for (const tree of [local, peer]) {
      tree.set("same", 1001, digestOf("s"));
      tree.set("also-same", 4999, digestOf("s"));
    }
    local.set("x", 1600, digestOf("local")); // leaf 1 of 8 (tokens 1501..2000)
    peer.set("x", 1600, digestOf("peer"));
    peer.set("y", 4600, digestOf("peer")); // leaf 7 (tokens 4501..5000)

    expect(differingChildren(local, 0, nodeHashes(peer, 0, [0]))).toEqual([0, 1]);
    expect(differingChildren(local, 1, nodeHashes(peer, 1, [0, 1]))).toEqual([0, 1, 2, 3]);
    expect(differingChildren(local, 2, nodeHashes(peer, 2, [0, 1, 2, 3]))).toEqual([0, 1, 6, 7]);
    const leafHashes = nodeHashes(peer, 3, [0, 1, 6, 7]);
    expect(differingNodes(local, 3, leafHashes)).toEqual([1, 7]);
    expect(differingChildren(local, 3, leafHashes)).toEqual([]);
  });

  it("reports nothing to ask for when the peer's hashes match", () => {
    const local = new MerkleTree(range, { depth: 3 });
    local.set("a", 2000, digestOf("a"));
    expect(differingChildren(local, 0, [{ index: 0, hash: local.root() }])).toEqual([]);
    expect(differingChildren(local, 2, [])).toEqual([]);
  });

  it("rejects malformed peer answers: wrong hash length, level or index", () => {
    const local = new MerkleTree(range, { depth: 3 });
    expect(() => differingChildren(local, 0, [{ index: 0, hash: new Uint8Array(32) }])).toThrow(/16-byte Uint8Array \(hash format v1\)/);
    expect(() => differingChildren(local, 4, [{ index: 0, hash: new Uint8Array(16) }])).toThrow(InvalidMerkleArgumentError);
    expect(() => differingChildren(local, 1, [{ index: 2, hash: new Uint8Array(16) }])).toThrow(InvalidMerkleArgumentError);
  });
});

describe("diffEntries", () => {
  it("splits keys into local-only, remote-only and different digests, sorted", () => {
    const local = [
      { key: "c", digest: digestOf("1") },
      { key: "a", digest: digestOf("1") },
      { key: "same", digest: digestOf("s") },
      { key: "changed", digest: digestOf("old") },
    ];
    const remote = [
      { key: "same", digest: digestOf("s") },
      { key: "changed", digest: digestOf("new") },
      { key: "z", digest: digestOf("1") },
      { key: "b", digest: digestOf("1") },
    ];
    expect(diffEntries(local, remote)).toEqual({ onlyLocal: ["a", "c"], onlyRemote: ["b", "z"], different: ["changed"] });
    expect(diffEntries([], [])).toEqual({ onlyLocal: [], onlyRemote: [], different: [] });
  });

  it("treats digests of different lengths as different", () => {
    const short = { key: "k", digest: new Uint8Array(16) };
    const long = { key: "k", digest: new Uint8Array(32) };
    expect(diffEntries([short], [long]).different).toEqual(["k"]);
  });

  it("rejects a side that lists a key twice", () => {
    const entry = { key: "k", digest: digestOf("1") };
    expect(() => diffEntries([entry, entry], [])).toThrow(/local entries list key "k" twice/);
    expect(() => diffEntries([], [entry, entry])).toThrow(/remote entries list key "k" twice/);
  });
});
