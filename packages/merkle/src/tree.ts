import { isToken, rangeSize, type TokenRange } from "@dynamo-ts/ring";
import { InvalidMerkleArgumentError, TokenOutOfRangeError } from "./errors.js";
import { EMPTY_SUBTREE_HASHES, HASH_BYTES, MAX_DEPTH, addInto, entryHashString, innerHash } from "./hash.js";
import { assertValidRange, offsetInRange } from "./range.js";

export const DEFAULT_DEPTH = 10;
export const MIN_DEPTH = 1;
export { MAX_DEPTH };

export interface MerkleTreeOptions {
  /** The tree has 2^depth leaves; 1..16, default 10. */
  readonly depth?: number;
}

/** One key held by a tree, as shipped to a peer once the descent reaches a differing leaf. */
export interface LeafEntry {
  readonly key: string;
  readonly token: number;
  readonly digest: Uint8Array;
}

interface StoredEntry {
  readonly token: number;
  /**
   * The digest as a one-byte (latin1) string: about 30 bytes on the heap for a 16-byte digest,
   * against well over 100 for a Uint8Array object, and comparable with ===.
   */
  digest: string;
  /** Position of the key in its leaf's bucket, for O(1) swap-removal. */
  slot: number;
}

// Per-node state, one byte per node. EMPTY nodes have no keys beneath them: their hash is the
// shared constant for an empty subtree of that height, so nothing is stored or hashed for them.
const EMPTY = 0;
const CLEAN = 1;
const DIRTY = 2; // inner nodes only: some leaf beneath changed since the hash was computed

/**
 * A Merkle tree over the (key, version digest) pairs a node holds in one ring range.
 *
 * Nodes live in heap order (node (level, index) at position 2^level - 1 + index; the children
 * of position p are 2p+1 and 2p+2) in one flat byte array, allocated on the first key and
 * released when the tree becomes empty again.
 */
export class MerkleTree {
  readonly range: TokenRange;
  readonly depth: number;
  private readonly leafCount: number;
  private readonly span: number;
  private readonly firstLeafPosition: number;
  private readonly nodeCount: number;

  /** Node hashes, HASH_BYTES per node in heap order; leaves hold their 128-bit sum. */
  private hashes: Uint8Array | undefined;
  /** EMPTY / CLEAN / DIRTY per node, heap order. */
  private states: Uint8Array | undefined;
  /** The keys of each leaf (unordered), for leafEntries(): arrays cost far less than Maps. */
  private buckets: Array<string[] | undefined> | undefined;
  /** Every key, to catch a key set again under another token (which would duplicate it). */
  private readonly entries = new Map<string, StoredEntry>();
  private innerHashesComputed = 0;

  constructor(range: TokenRange, options: MerkleTreeOptions = {}) {
    assertValidRange(range);
    const depth = options.depth ?? DEFAULT_DEPTH;
    if (!Number.isInteger(depth) || depth < MIN_DEPTH || depth > MAX_DEPTH) {
      throw new InvalidMerkleArgumentError(`depth must be an integer in ${MIN_DEPTH}..${MAX_DEPTH}: got ${String(depth)}`);
    }
    this.range = Object.freeze({ start: range.start, end: range.end });
    this.depth = depth;
    this.leafCount = 2 ** depth;
    this.span = rangeSize(range);
    this.firstLeafPosition = this.leafCount - 1;
    this.nodeCount = 2 * this.leafCount - 1;
  }

  /** Number of keys in the tree. */
  get size(): number {
    return this.entries.size;
  }

  /** Number of leaves, 2^depth. */
  get leaves(): number {
    return this.leafCount;
  }

  /** Inner-node hashes computed since construction: for metrics, and to check laziness. */
  get rehashes(): number {
    return this.innerHashesComputed;
  }

  /**
   * Sets (or replaces) a key's version digest; an undefined digest removes the key.
   * The tree depends only on the final (key, digest) set, never on the order of calls.
   * Marks the leaf's ancestors dirty; hashes are recomputed when next read.
   */
  set(key: string, token: number, digest: Uint8Array | undefined): void {
    assertKey(key);
    const leaf = this.leafOf(token);
    if (digest !== undefined && !(digest instanceof Uint8Array)) {
      throw new InvalidMerkleArgumentError(`digest of key ${JSON.stringify(key)} must be a Uint8Array or undefined`);
    }
    const existing = this.entries.get(key);
    if (existing !== undefined && existing.token !== token) {
      throw new InvalidMerkleArgumentError(`key ${JSON.stringify(key)} is already in the tree with token ${existing.token}, not ${token}`);
    }
    const leafPosition = this.firstLeafPosition + leaf;
    const leafOffset = leafPosition * HASH_BYTES;

    if (digest === undefined) {
      if (existing === undefined) return;
      const hashes = this.hashes!;
      addInto(hashes, leafOffset, entryHashString(key, existing.digest), -1);
      this.entries.delete(key);
      const bucket = this.buckets![leaf]!;
      const last = bucket.pop()!;
      if (last !== key) {
        bucket[existing.slot] = last;
        this.entries.get(last)!.slot = existing.slot;
      }
      if (bucket.length === 0) {
        this.buckets![leaf] = undefined;
        this.states![leafPosition] = EMPTY;
      }
      if (this.entries.size === 0) {
        this.releaseStorage();
      } else {
        this.markAncestorsDirty(leafPosition);
      }
      return;
    }

    const encoded = encodeDigest(digest);
    if (existing !== undefined) {
      if (existing.digest === encoded) return;
      const hashes = this.hashes!;
      addInto(hashes, leafOffset, entryHashString(key, existing.digest), -1);
      addInto(hashes, leafOffset, entryHashString(key, digest), 1);
      existing.digest = encoded;
      this.markAncestorsDirty(leafPosition);
      return;
    }

    const { hashes, states, buckets } = this.ensureStorage();
    addInto(hashes, leafOffset, entryHashString(key, digest), 1);
    let bucket = buckets[leaf];
    if (bucket === undefined) {
      bucket = [];
      buckets[leaf] = bucket;
    }
    this.entries.set(key, { token, digest: encoded, slot: bucket.length });
    bucket.push(key);
    states[leafPosition] = CLEAN;
    this.markAncestorsDirty(leafPosition);
  }

  /** The digest and token of a key, or undefined when the tree does not hold it. */
  get(key: string): { token: number; digest: Uint8Array } | undefined {
    const entry = this.entries.get(key);
    return entry === undefined ? undefined : { token: entry.token, digest: decodeDigest(entry.digest) };
  }

  /** True when the token lies in this tree's range. */
  covers(token: number): boolean {
    return isToken(token) && offsetInRange(this.range, token) < this.span;
  }

  /** Leaf index of a token: the range's span is split into 2^depth equal buckets. */
  leafOf(token: number): number {
    if (!isToken(token)) {
      throw new InvalidMerkleArgumentError(`token must be an integer in [0, 2^32): got ${String(token)}`);
    }
    const offset = offsetInRange(this.range, token);
    if (offset >= this.span) {
      throw new TokenOutOfRangeError(token, this.range.start, this.range.end);
    }
    // offset * leafCount < 2^48, so the product is exact, and floor of the quotient is exact
    // because a non-integral quotient stays at least 1/span away from the next integer.
    return Math.floor((offset * this.leafCount) / this.span);
  }

  /** Hash of node `index` at `level` (0 = root, depth = leaves), recomputing dirty paths. */
  hashAt(level: number, index: number): Uint8Array {
    this.assertNode(level, index);
    return this.nodeHash(2 ** level - 1 + index, this.depth - level).slice();
  }

  root(): Uint8Array {
    return this.hashAt(0, 0);
  }

  /** The keys in one leaf with their tokens and digests, sorted by key. */
  leafEntries(leaf: number): LeafEntry[] {
    this.assertNode(this.depth, leaf);
    const bucket = this.buckets?.[leaf];
    if (bucket === undefined) return [];
    return [...bucket].sort().map((key) => {
      const entry = this.entries.get(key)!;
      return { key, token: entry.token, digest: decodeDigest(entry.digest) };
    });
  }

  private assertNode(level: number, index: number): void {
    if (!Number.isInteger(level) || level < 0 || level > this.depth) {
      throw new InvalidMerkleArgumentError(`level must be an integer in 0..${this.depth}: got ${String(level)}`);
    }
    const width = 2 ** level;
    if (!Number.isInteger(index) || index < 0 || index >= width) {
      throw new InvalidMerkleArgumentError(`index at level ${level} must be an integer in 0..${width - 1}: got ${String(index)}`);
    }
  }

  /** The node's hash as a view into internal storage (or a shared constant): do not mutate. */
  private nodeHash(position: number, height: number): Uint8Array {
    const states = this.states;
    if (states === undefined) return EMPTY_SUBTREE_HASHES[height]!;
    if (states[position] === DIRTY) this.recompute(position, height);
    if (states[position] === EMPTY) return EMPTY_SUBTREE_HASHES[height]!;
    const offset = position * HASH_BYTES;
    return this.hashes!.subarray(offset, offset + HASH_BYTES);
  }

  private recompute(position: number, height: number): void {
    const states = this.states!;
    const left = 2 * position + 1;
    const right = left + 1;
    // Children are read (and recomputed if dirty) before the parent, so a clean node never has
    // a dirty descendant: that lets markAncestorsDirty stop at the first dirty ancestor.
    const leftHash = this.nodeHash(left, height - 1);
    const rightHash = this.nodeHash(right, height - 1);
    if (states[left] === EMPTY && states[right] === EMPTY) {
      states[position] = EMPTY;
      return;
    }
    this.hashes!.set(innerHash(leftHash, rightHash), position * HASH_BYTES);
    states[position] = CLEAN;
    this.innerHashesComputed++;
  }

  private markAncestorsDirty(leafPosition: number): void {
    const states = this.states!;
    let position = leafPosition;
    while (position > 0) {
      position = (position - 1) >> 1;
      if (states[position] === DIRTY) return; // its ancestors are dirty already
      states[position] = DIRTY;
    }
  }

  private ensureStorage(): {
    hashes: Uint8Array;
    states: Uint8Array;
    buckets: Array<string[] | undefined>;
  } {
    if (this.hashes === undefined || this.states === undefined || this.buckets === undefined) {
      this.hashes = new Uint8Array(this.nodeCount * HASH_BYTES);
      this.states = new Uint8Array(this.nodeCount); // all EMPTY
      this.buckets = new Array<string[] | undefined>(this.leafCount).fill(undefined);
    }
    return { hashes: this.hashes, states: this.states, buckets: this.buckets };
  }

  private releaseStorage(): void {
    this.hashes = undefined;
    this.states = undefined;
    this.buckets = undefined;
  }
}

function assertKey(key: string): void {
  if (typeof key !== "string") {
    throw new InvalidMerkleArgumentError(`key must be a string: got ${typeof key}`);
  }
  // Lone surrogates all encode to U+FFFD in UTF-8, so two distinct ill-formed keys could hash
  // alike; keys on the wire are UTF-8 (protobuf strings) and cannot be ill-formed anyway.
  if (!key.isWellFormed()) {
    throw new InvalidMerkleArgumentError(`key ${JSON.stringify(key)} is not well-formed UTF-16 (lone surrogate)`);
  }
}

function encodeDigest(digest: Uint8Array): string {
  // Not Buffer#toString: reaching a small typed array's .buffer moves its bytes off the V8 heap.
  return String.fromCharCode.apply(null, digest as unknown as number[]);
}

function decodeDigest(encoded: string): Uint8Array {
  const bytes = new Uint8Array(encoded.length);
  for (let i = 0; i < encoded.length; i++) bytes[i] = encoded.charCodeAt(i);
  return bytes;
}
