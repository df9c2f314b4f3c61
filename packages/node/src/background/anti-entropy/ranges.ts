// The pure rules: a key's version digest, a range's tree depth, range overlap, the tombstone rule's
// decision for a key one replica lacks, and batching. No I/O, no state; co-replicas agree on them.
import { hash } from "node:crypto";
import { rangeContains, rangeSize, type TokenRange } from "@dynamo-ts/ring";
import { encodeSiblingSet, isDeleted, type SiblingSet } from "@dynamo-ts/vclock";
import { MAX_TREE_DEPTH, MIN_TREE_DEPTH } from "./limits.js";

/** Bytes of a key's version digest in the tree: SHA-256 of the encoded sibling set, truncated. */
export const DIGEST_BYTES = 16;

/** Digest of a sibling set. The encoding is canonical, so equal sets give equal digests. */
export function versionDigest(set: SiblingSet): Uint8Array {
  return digestOfEncoded(encodeSiblingSet(set));
}

/** versionDigest of a set given already encoded (the bytes the store wrote). */
export function digestOfEncoded(encoded: Uint8Array): Uint8Array {
  // The hash as a one-byte string, copied into a small array on the V8 heap: a Buffer result
  // costs an ArrayBuffer of its own per write (crypto.hash() to a Buffer 1.6 µs, to a string 0.3 µs).
  const full = hash("sha256", encoded, "binary");
  const digest = new Uint8Array(DIGEST_BYTES);
  for (let i = 0; i < DIGEST_BYTES; i++) digest[i] = full.charCodeAt(i);
  return digest;
}

/**
 * Tree depth of a range: 2^14 leaves for the whole ring, proportionally fewer for smaller
 * ranges (never fewer than 16). A pure function of the range, so co-replicas agree on it.
 */
export function treeDepthFor(range: TokenRange): number {
  const span = rangeSize(range);
  let bits = 0;
  while (2 ** bits < span) bits++;
  return Math.min(MAX_TREE_DEPTH, Math.max(MIN_TREE_DEPTH, bits - (32 - MAX_TREE_DEPTH)));
}

/** Whether two ranges (start exclusive, end inclusive, wrapping) share a token. */
export function rangesOverlap(a: TokenRange, b: TokenRange): boolean {
  // Walking clockwise from a shared token, the first of the two ends met lies in both ranges.
  return rangeContains(a, b.end) || rangeContains(b, a.end);
}

/**
 * The fraction of the tombstone grace period after which a key one replica lacks entirely is
 * only copied once another replica confirms it. Half, so that clock skew between coordinators of
 * up to half the grace period cannot make a purged key look young.
 */
export const CONFIRM_AFTER_GRACE_FRACTION = 0.5;

/**
 * What to do with a key that one replica holds (`set`) and the other lacks entirely: "copy" it
 * (only tombstones, which cannot resurrect anything, or a version young enough that no delete
 * of it can have been purged yet), or "confirm" first that another replica holds it too (the
 * absence might be a delete whose tombstone was purged, the holder a stale replica).
 */
export function missingKeyDecision(set: SiblingSet, now: number, tombstoneGraceMs: number): "copy" | "confirm" {
  if (isDeleted(set)) return "copy";
  const newest = Math.max(...set.siblings.map((sibling) => sibling.timestamp));
  return now - newest < tombstoneGraceMs * CONFIRM_AFTER_GRACE_FRACTION ? "copy" : "confirm";
}

/** Splits `items` into consecutive chunks of at most `size`. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
