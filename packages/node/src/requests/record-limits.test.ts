import { Code } from "@connectrpc/connect";
import { encodeSiblingSet, type SiblingSet, update } from "@dynamo-ts/vclock";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { checkRecordLimits, recordSizeBound } from "./record-limits.js";

const bytes = (n: number) => new Uint8Array(n).fill(1);
/** `count` blind writes through `node`: that many siblings. */
function blindWrites(count: number, size: number, node = "n1"): SiblingSet {
  let set: SiblingSet | undefined;
  for (let i = 0; i < count; i++) set = update(set, new Map(), node, bytes(size), i);
  return set!;
}

describe("record limits", () => {
  const limits = { maxSiblings: 3, maxRecordBytes: 10_000 };

  it("refuses a write that adds a sibling past the limit, with FailedPrecondition and how to resolve", () => {
    const three = blindWrites(3, 10);
    const four = update(three, new Map(), "n1", bytes(10), 9);
    const verdict = checkRecordLimits("k", three, four, limits);
    expect(verdict.ok).toBe(false);
    if (!verdict.ok) {
      expect(verdict.reason).toBe("siblings");
      expect(verdict.error.code).toBe(Code.FailedPrecondition);
      expect(verdict.error.rawMessage).toMatch(/4 siblings, more than the limit of 3: read the key and write back one resolved value/);
    }
  });

  it("accepts a write that resolves siblings, even on a record already over the limits (merged elsewhere)", () => {
    const crowded = blindWrites(6, 3000);
    const resolved = update(crowded, crowded.clock, "n1", bytes(10), 99);
    expect(checkRecordLimits("k", crowded, resolved, limits)).toEqual({ ok: true, nearLimit: false });
    // A write that replaces one sibling keeps the count: not growing, so accepted.
    const oneSeen = new Map([["n1", 1]]);
    expect(checkRecordLimits("k", crowded, update(crowded, oneSeen, "n1", bytes(10), 100), limits).ok).toBe(true);
  });

  it("refuses a write that makes the record larger than the byte limit", () => {
    const before = blindWrites(2, 4000);
    const after = update(before, new Map(), "n1", bytes(4000), 5);
    const verdict = checkRecordLimits("k", before, after, { maxSiblings: 100, maxRecordBytes: 10_000 });
    expect(verdict.ok).toBe(false);
    if (!verdict.ok) expect(verdict.error.rawMessage).toMatch(/more than the record limit of 10000: resolve its siblings/);
  });

  it("refuses even a shrinking write whose result is too large to ship between nodes; the resolving write passes", () => {
    const merged = blindWrites(5, 4000);
    const seenOne = update(merged, new Map([["n1", 1]]), "n1", bytes(3000), 50);
    const shippable = { maxSiblings: 100, maxRecordBytes: 8_000, maxShippedRecordBytes: 16_000 };
    expect(checkRecordLimits("k", merged, seenOne, shippable).ok).toBe(false);
    expect(checkRecordLimits("k", merged, update(merged, merged.clock, "n1", bytes(3000), 51), shippable).ok).toBe(true);
  });

  it("warns near the limits", () => {
    const near = checkRecordLimits("k", undefined, blindWrites(1, 6000), limits);
    expect(near).toEqual({ ok: true, nearLimit: true });
  });

  it("bounds the encoded size from above (property)", () => {
    const node = fc.constantFrom("n1", "n2", "node-with-a-long-name-ü");
    const contentType = fc.option(fc.constantFrom("text/plain", "x".repeat(255)), { nil: undefined });
    const writes = fc.array(fc.record({ node, size: fc.integer({ min: 0, max: 300 }), seen: fc.boolean(), contentType }), { maxLength: 20 });
    fc.assert(
      fc.property(writes, (ops) => {
        let set: SiblingSet | undefined;
        for (const [i, op] of ops.entries()) {
          const value = op.size === 0 ? null : bytes(op.size);
          set = update(set, op.seen && set ? set.clock : new Map(), op.node, value, 2 ** 40 + i, value === null ? undefined : op.contentType);
        }
        if (set) expect(recordSizeBound(set)).toBeGreaterThanOrEqual(encodeSiblingSet(set).byteLength);
      }),
      { seed: 21, numRuns: 300 },
    );
  });
});
