import { hash } from "node:crypto";
import { InvalidMerkleArgumentError } from "./errors.js";

/**
 * Version of the hash format below. Both sides of an exchange must use the same one; a peer
 * on another version would see every node differ, so the anti-entropy RPC carries it and
 * refuses to compare across versions.
 *
 * Format v1 (all hashes are 16 bytes, the first 16 bytes of a SHA-256):
 * - entry hash  = SHA-256(0x00 || u32be(byteLength(utf8(key))) || utf8(key) || digest)[0..16]
 * - leaf value  = sum of its entry hashes, each read as an unsigned little-endian 128-bit
 *                 integer, modulo 2^128, written back little-endian; an empty leaf is 16 zero bytes
 * - inner node  = SHA-256(0x01 || left child || right child)[0..16]
 * The leading 0x00 / 0x01 tags keep entry hashes and inner-node hashes in separate domains.
 */
export const HASH_FORMAT_VERSION = 1;

/** Length in bytes of every hash in the tree. */
export const HASH_BYTES = 16;

const ENTRY_TAG = 0x00;
const NODE_TAG = 0x01;

// The hashes are taken as one-byte ("binary", i.e. latin1) strings: node's crypto.hash() returns
// a Buffer by copying the digest into a buffer of its own (several mallocs and an ArrayBuffer the
// GC has to sweep), about 1.6 µs a call against 0.3 µs for the string, and every write to the
// store adds two or three entry hashes to a tree. The strings live on the V8 heap.

/**
 * Entry hash, format v1, as a latin1 string of the full SHA-256 (only the first HASH_BYTES count).
 * `digest` is the version digest's bytes, or the latin1 string of them.
 */
export function entryHashString(key: string, digest: Uint8Array | string): string {
  const keyLength = Buffer.byteLength(key, "utf8");
  // One buffer (from node's pool, not a fresh ArrayBuffer) and a one-shot hash: a Hash object per
  // entry cost more than the hashing.
  const input = Buffer.allocUnsafe(5 + keyLength + digest.length);
  input[0] = ENTRY_TAG;
  input.writeUInt32BE(keyLength, 1);
  input.write(key, 5, "utf8");
  if (typeof digest === "string") input.write(digest, 5 + keyLength, "latin1");
  else input.set(digest, 5 + keyLength);
  return hash("sha256", input, "binary");
}

/** Hash of one (key, version digest) pair, format v1. */
export function entryHash(key: string, digest: Uint8Array): Uint8Array {
  return hashBytes(entryHashString(key, digest));
}

/** Hash of an inner node from its children's hashes, format v1. */
export function innerHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  const input = Buffer.allocUnsafe(1 + left.byteLength + right.byteLength);
  input[0] = NODE_TAG;
  input.set(left, 1);
  input.set(right, 1 + left.byteLength);
  return hashBytes(hash("sha256", input, "binary"));
}

/** The first HASH_BYTES bytes of a latin1 hash string. */
function hashBytes(full: string): Uint8Array {
  const out = new Uint8Array(HASH_BYTES);
  for (let i = 0; i < HASH_BYTES; i++) out[i] = full.charCodeAt(i);
  return out;
}

/**
 * Adds (sign = 1) or subtracts (sign = -1) `value` to the little-endian 128-bit integer stored
 * at `target[offset .. offset+16]`, modulo 2^128 (`value`: bytes, or a latin1 string of at least
 * 16 characters). Addition is the leaf aggregate: it is order-independent and exactly reversible,
 * so set() touches a leaf in O(1).
 */
export function addInto(target: Uint8Array, offset: number, value: Uint8Array | string, sign: 1 | -1): void {
  const bytes = typeof value === "string";
  let carry = 0;
  for (let i = 0; i < HASH_BYTES; i++) {
    const sum = (target[offset + i] ?? 0) + sign * ((bytes ? value.charCodeAt(i) : value[i]) ?? 0) + carry;
    // sum is in [-256, 510]; normalise to one byte and carry/borrow the rest.
    const byte = sum & 0xff;
    target[offset + i] = byte;
    carry = (sum - byte) / 256;
  }
}

/** Hashes of empty subtrees by height (0 = an empty leaf), shared by every tree. */
export const MAX_DEPTH = 16;
export const EMPTY_SUBTREE_HASHES: readonly Uint8Array[] = (() => {
  const hashes: Uint8Array[] = [new Uint8Array(HASH_BYTES)];
  for (let height = 1; height <= MAX_DEPTH; height++) {
    const below = hashes[height - 1]!;
    hashes.push(innerHash(below, below));
  }
  return hashes;
})();

export function equalHashes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return false;
  }
  return true;
}

export function assertHash(hash: Uint8Array, what: string): void {
  if (!(hash instanceof Uint8Array) || hash.length !== HASH_BYTES) {
    throw new InvalidMerkleArgumentError(`${what} must be a ${HASH_BYTES}-byte Uint8Array (hash format v${HASH_FORMAT_VERSION})`);
  }
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}
