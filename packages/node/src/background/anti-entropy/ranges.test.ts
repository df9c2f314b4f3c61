// Anti-entropy's pure rules: version digests, tree depths, range overlap, the tombstone rule's
// decision, and batching.
import { createHash } from "node:crypto";
import { rangeContains, TOKEN_SPACE, type TokenRange } from "@dynamo-ts/ring";
import { decodeSiblingSet, emptySet, encodeSiblingSet, update } from "@dynamo-ts/vclock";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { chunks, missingKeyDecision, rangesOverlap, treeDepthFor, versionDigest } from "./ranges.js";

const bytes = (text: string) => new TextEncoder().encode(text);

describe("versionDigest", () => {
  it("is 16 bytes, equal for equal sets (whatever their object identity), different for different ones", () => {
    const set = update(emptySet(), new Map(), "a", bytes("v"), 1_000);
    const copy = decodeSiblingSet(encodeSiblingSet(set));
    expect(versionDigest(set)).toHaveLength(16);
    expect(versionDigest(copy)).toEqual(versionDigest(set));
    expect(versionDigest(update(set, set.clock, "a", bytes("w"), 2_000))).not.toEqual(versionDigest(set));
    expect(versionDigest(update(set, new Map(), "b", bytes("v"), 1_000))).not.toEqual(versionDigest(set));
  });

  it("is the first 16 bytes of the SHA-256 of the encoded set (what peers of every version compare)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 2 ** 40 }), (value, timestamp) => {
        const set = update(emptySet(), new Map(), "node-1", value, timestamp);
        const expected = createHash("sha256").update(encodeSiblingSet(set)).digest().subarray(0, 16);
        expect(Buffer.from(versionDigest(set)).toString("hex")).toBe(expected.toString("hex"));
      }),
      { seed: 17, numRuns: 200 },
    );
  });
});

describe("treeDepthFor", () => {
  it("gives the whole ring 2^14 leaves and smaller ranges proportionally fewer, at least 16", () => {
    expect(treeDepthFor({ start: 5, end: 5 })).toBe(14);
    expect(treeDepthFor({ start: 0, end: 2 ** 31 })).toBe(13);
    expect(treeDepthFor({ start: 0, end: 2 ** 26 })).toBe(8);
    expect(treeDepthFor({ start: 0, end: 2 ** 26 + 1 })).toBe(9);
    expect(treeDepthFor({ start: 10, end: 11 })).toBe(4);
    // Wrapping ranges measure their span the same way.
    expect(treeDepthFor({ start: TOKEN_SPACE - 2 ** 25, end: 2 ** 25 })).toBe(8);
  });
});

describe("rangesOverlap", () => {
  it("agrees with a token-by-token check (bounds near the wrap, one token standing for the untouched middle)", () => {
    const edge = [0, 1, 2, 3, TOKEN_SPACE - 3, TOKEN_SPACE - 2, TOKEN_SPACE - 1];
    const probe = [...edge, 1_000_000];
    const rangeArb = fc.record({ start: fc.constantFrom(...edge), end: fc.constantFrom(...edge) });
    fc.assert(
      fc.property(rangeArb, rangeArb, (a: TokenRange, b: TokenRange) => {
        const shared = probe.some((t) => rangeContains(a, t) && rangeContains(b, t));
        expect(rangesOverlap(a, b)).toBe(shared);
        expect(rangesOverlap(b, a)).toBe(shared);
      }),
      { seed: 3, numRuns: 300 },
    );
  });
});

describe("missingKeyDecision (the tombstone rule)", () => {
  const grace = 10_000;
  const now = 1_000_000;
  it("copies tombstones, and versions younger than half the grace period", () => {
    const live = update(emptySet(), new Map(), "a", bytes("v"), now - 1_000);
    const tombstone = update(live, live.clock, "a", null, now - 60 * grace);
    expect(missingKeyDecision(tombstone, now, grace)).toBe("copy");
    expect(missingKeyDecision(live, now, grace)).toBe("copy");
    expect(missingKeyDecision(update(emptySet(), new Map(), "a", bytes("v"), now - grace / 2 + 1), now, grace)).toBe("copy");
  });
  it("asks for confirmation once the newest version is older than half the grace period", () => {
    const old = update(emptySet(), new Map(), "a", bytes("v"), now - grace / 2);
    expect(missingKeyDecision(old, now, grace)).toBe("confirm");
    // A concurrent young sibling makes the key young; an old value beside a tombstone stays old.
    expect(missingKeyDecision(update(old, new Map(), "b", bytes("w"), now - 10), now, grace)).toBe("copy");
    expect(missingKeyDecision(update(old, new Map(), "b", null, now - grace), now, grace)).toBe("confirm");
  });
});

describe("chunks", () => {
  it("splits in order into pieces of at most the size", () => {
    expect(chunks([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
    expect(chunks([], 3)).toEqual([]);
  });
});
