import { RingError } from "./errors.js";

// MurmurHash3_x86_32 (Austin Appleby, smhasher, public domain). Data placement depends on these
// exact outputs, so this function must never change: it is checked against published vectors.

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

function mixBlock(h: number, block: number): number {
  let k = Math.imul(block, C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, C2);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function mixTail(h: number, tail: number): number {
  let k = Math.imul(tail, C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, C2);
  return h ^ k;
}

function finalize(h: number, byteLength: number): number {
  h ^= byteLength;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** MurmurHash3_x86_32 of `data` with the given 32-bit `seed`; returns an unsigned 32-bit integer. */
export function murmurHash3x86_32(data: Uint8Array, seed = 0): number {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RingError(`seed must be an unsigned 32-bit integer, got ${seed}`);
  }
  let h = seed | 0;
  const length = data.length;
  const blockEnd = length & ~3;
  let i = 0;
  for (; i < blockEnd; i += 4) {
    h = mixBlock(h, data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24));
  }
  switch (length & 3) {
    case 3:
      h = mixTail(h, data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16));
      break;
    case 2:
      h = mixTail(h, data[i]! | (data[i + 1]! << 8));
      break;
    case 1:
      h = mixTail(h, data[i]!);
      break;
  }
  return finalize(h, length);
}

const utf8 = new TextEncoder();
// Reused for non-ASCII keys so that hashing does not allocate; hashing is synchronous, so a
// single module-level buffer cannot be shared by two calls at once.
let scratch = new Uint8Array(1024);
const MAX_RETAINED_SCRATCH = 1 << 16;

function hashNonAsciiString(key: string): number {
  // UTF-8 needs at most 3 bytes per UTF-16 code unit (a surrogate pair is 2 units -> 4 bytes).
  const needed = key.length * 3;
  if (needed > MAX_RETAINED_SCRATCH) return murmurHash3x86_32(utf8.encode(key));
  if (needed > scratch.length) scratch = new Uint8Array(MAX_RETAINED_SCRATCH);
  const { written } = utf8.encodeInto(key, scratch);
  return murmurHash3x86_32(scratch.subarray(0, written));
}

/**
 * The ring token of a key: MurmurHash3_x86_32 with seed 0 over the UTF-8 bytes of `key` (as
 * `TextEncoder` produces them, so a lone surrogate hashes as U+FFFD), or over the bytes given.
 * Unsigned 32-bit. Stable forever: data placement depends on it.
 */
export function hashKey(key: string | Uint8Array): number {
  if (typeof key !== "string") return murmurHash3x86_32(key);
  // Fast path for ASCII strings (the common case): UTF-16 code units are the UTF-8 bytes.
  const length = key.length;
  const blockEnd = length & ~3;
  let h = 0;
  let i = 0;
  for (; i < blockEnd; i += 4) {
    const b0 = key.charCodeAt(i);
    const b1 = key.charCodeAt(i + 1);
    const b2 = key.charCodeAt(i + 2);
    const b3 = key.charCodeAt(i + 3);
    if ((b0 | b1 | b2 | b3) >= 0x80) return hashNonAsciiString(key);
    h = mixBlock(h, b0 | (b1 << 8) | (b2 << 16) | (b3 << 24));
  }
  let tail = 0;
  for (let shift = 0; i < length; i++, shift += 8) {
    const b = key.charCodeAt(i);
    if (b >= 0x80) return hashNonAsciiString(key);
    tail |= b << shift;
  }
  if ((length & 3) !== 0) h = mixTail(h, tail);
  return finalize(h, length);
}

/** Token of a node's `index`-th virtual node: `hashKey(`${node}#${index}`)`. Stable forever. */
export function vnodeToken(node: string, index: number): number {
  if (!Number.isInteger(index) || index < 0) {
    throw new RingError(`vnode index must be a non-negative integer, got ${index}`);
  }
  return hashKey(`${node}#${index}`);
}
