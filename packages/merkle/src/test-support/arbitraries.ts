import fc from "fast-check";
import { createHash } from "node:crypto";
import type { TokenRange } from "@dynamo-ts/ring";

const TWO_32 = 2 ** 32;

export function spanOf(range: TokenRange): number {
  return range.start === range.end ? TWO_32 : (((range.end - range.start) % TWO_32) + TWO_32) % TWO_32;
}

/** The token at `offset` (0-based) after the range's start. */
export function tokenAt(range: TokenRange, offset: number): number {
  return (range.start + 1 + offset) % TWO_32;
}

/**
 * A stable token for a key inside the range, standing in for the ring's MurmurHash3:
 * the same key always lands on the same token, as the tree requires.
 */
export function tokenOfKey(range: TokenRange, key: string): number {
  const hash = createHash("sha256").update(key).digest().readUInt32BE(0);
  return tokenAt(range, hash % spanOf(range));
}

export function digestOf(text: string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(text).digest().subarray(0, 16));
}

const token = fc.integer({ min: 0, max: TWO_32 - 1 });

/** Arbitrary ranges, biased towards small spans, wrap-around and the whole ring. */
export const rangeArb: fc.Arbitrary<TokenRange> = fc.oneof(
  fc.record({ start: token, end: token }),
  token.map((t) => ({ start: t, end: t })),
  fc.tuple(token, fc.integer({ min: 1, max: 64 })).map(([start, span]) => ({ start, end: (start + span) % TWO_32 })),
  fc.integer({ min: 1, max: 1000 }).map((span) => ({ start: TWO_32 - 1 - Math.floor(span / 2), end: Math.ceil(span / 2) })),
);

/** Keys from a small alphabet so that the same keys recur across operations and trees. */
export const keyArb = fc.string({ unit: fc.constantFrom("a", "b", "c", "d", "é", "😀"), minLength: 0, maxLength: 3 });

/** Digests of varying length (16 or 32 bytes), from a small pool so that equal digests recur. */
export const digestArb = fc.oneof(
  fc.integer({ min: 0, max: 5 }).map((n) => digestOf(`v${n}`)),
  fc.uint8Array({ minLength: 32, maxLength: 32 }),
);

/** A set (undefined = remove) operation on a key. */
export const operationArb = fc.record({ key: keyArb, digest: fc.option(digestArb, { nil: undefined }) });
