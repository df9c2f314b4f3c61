// An independent, deliberately naive model of hash format v1, for tests: BigInt arithmetic for
// leaf placement and leaf sums, and every node hashed bottom-up with no empty-subtree shortcut.
import { createHash } from "node:crypto";

export interface ReferenceEntry {
  readonly key: string;
  readonly token: number;
  readonly digest: Uint8Array;
}

const TWO_32 = 1n << 32n;
const TWO_128 = 1n << 128n;

export function referenceLeafOf(start: number, end: number, depth: number, token: number): number {
  const span = start === end ? TWO_32 : (((BigInt(end) - BigInt(start)) % TWO_32) + TWO_32) % TWO_32;
  const offset = (((BigInt(token) - BigInt(start) - 1n) % TWO_32) + TWO_32) % TWO_32;
  if (offset >= span) throw new Error(`reference: token ${token} outside (${start}, ${end}]`);
  return Number((offset << BigInt(depth)) / span);
}

function sha256Prefix(...parts: Uint8Array[]): Uint8Array {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(part);
  return new Uint8Array(hash.digest().subarray(0, 16));
}

export function referenceEntryHash(key: string, digest: Uint8Array): Uint8Array {
  const keyBytes = new TextEncoder().encode(key);
  const header = new Uint8Array(5);
  new DataView(header.buffer).setUint32(1, keyBytes.length, false);
  return sha256Prefix(header, keyBytes, digest);
}

function littleEndianToBigInt(bytes: Uint8Array): bigint {
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]!);
  return value;
}

function bigIntToLittleEndian(value: bigint): Uint8Array {
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    bytes[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return bytes;
}

/** Every node hash, as levels[level][index]. */
export function referenceTree(start: number, end: number, depth: number, entries: ReadonlyArray<ReferenceEntry>): Uint8Array[][] {
  const sums = new Array<bigint>(2 ** depth).fill(0n);
  for (const { key, token, digest } of entries) {
    const leaf = referenceLeafOf(start, end, depth, token);
    sums[leaf] = (sums[leaf]! + littleEndianToBigInt(referenceEntryHash(key, digest))) % TWO_128;
  }
  const levels: Uint8Array[][] = [];
  levels[depth] = sums.map(bigIntToLittleEndian);
  for (let level = depth - 1; level >= 0; level--) {
    const below = levels[level + 1]!;
    levels[level] = Array.from({ length: 2 ** level }, (_, index) => sha256Prefix(new Uint8Array([1]), below[2 * index]!, below[2 * index + 1]!));
  }
  return levels;
}
