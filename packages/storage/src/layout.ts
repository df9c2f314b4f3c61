import { hashKey } from "@dynamo-ts/ring";
import type { TokenRange } from "@dynamo-ts/ring";
import { StorageCorruptionError, StorageInputError } from "./errors.js";

/*
 * LevelDB key layout. Every key starts with a one-byte namespace so that data and metadata can
 * never collide:
 *
 *   data:     0x64 ('d') | token (u32 big-endian) | key (UTF-8)    value: encodeSiblingSet bytes
 *   metadata: 0x6d ('m') | name (UTF-8)                            value: UTF-8 text
 *
 * Data keys sort by token, then by key bytes, so a token range is one contiguous LevelDB range
 * (two for a range that wraps around the ring).
 *
 * Metadata keys: "format" (the format marker, written when the store is created) and "probe"
 * (written and deleted again by Storage.probe() and reopen() to prove that LevelDB takes writes;
 * absent at rest).
 */

const DATA_NAMESPACE = 0x64;
const METADATA_NAMESPACE = 0x6d;
const TOKEN_LIMIT = 0x1_0000_0000;
const PREFIX_BYTES = 5;

const utf8Encoder = new TextEncoder();
/** Fatal: bytes that are not UTF-8 are a damaged key, not a key with U+FFFD in it. */
const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The format this version reads and writes; kept under a metadata key and checked at open. */
export const STORAGE_FORMAT = "dynamo-ts/storage sibling-sets v1";
export const FORMAT_KEY = Uint8Array.from([METADATA_NAMESPACE, ...utf8Encoder.encode("format")]);
export const PROBE_KEY = Uint8Array.from([METADATA_NAMESPACE, ...utf8Encoder.encode("probe")]);
/** A file that probes create, fsync and delete in the store's directory (LevelDB ignores names it did not write). */
export const PROBE_FILE = "dynamo-ts-storage-probe.tmp";
export const DATA_START = Uint8Array.of(DATA_NAMESPACE);
export const DATA_END = Uint8Array.of(DATA_NAMESPACE + 1);

export function validateKey(key: string): void {
  if (typeof key !== "string") throw new StorageInputError(`key must be a string, got ${typeof key}`);
  // A lone surrogate would be stored as U+FFFD and come back from scan() as a different key.
  if (!key.isWellFormed()) throw new StorageInputError(`key ${JSON.stringify(key)} is not well-formed Unicode`);
}

export function dataKey(token: number, key: string): Uint8Array {
  // From node's Buffer pool: TextEncoder#encode and `new Uint8Array` each allocate a backing
  // store outside the V8 heap, and every read and write of a key makes its LevelDB key.
  const out = Buffer.allocUnsafe(PREFIX_BYTES + Buffer.byteLength(key, "utf8"));
  writeTokenPrefix(out, token);
  out.write(key, PREFIX_BYTES, "utf8");
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

export function tokenOf(key: string): number {
  return hashKey(key);
}

function writeTokenPrefix(out: Uint8Array, token: number): void {
  out[0] = DATA_NAMESPACE;
  out[1] = token >>> 24;
  out[2] = (token >>> 16) & 0xff;
  out[3] = (token >>> 8) & 0xff;
  out[4] = token & 0xff;
}

/**
 * The key and token of a data key read from LevelDB. Throws StorageCorruptionError unless the bytes
 * are exactly what dataKey(token, key) writes: the data namespace, a token, a key in well-formed
 * UTF-8, and a token that is the key's hash (a record under another token is in the wrong range,
 * where get() would never find it).
 */
export function parseDataKey(bytes: Uint8Array): { key: string; token: number } {
  if (bytes.length < PREFIX_BYTES || bytes[0] !== DATA_NAMESPACE) {
    throw new StorageCorruptionError(`stored key ${describeBytes(bytes)} is not a data key`);
  }
  const token = (((bytes[1] as number) << 24) | ((bytes[2] as number) << 16) | ((bytes[3] as number) << 8) | (bytes[4] as number)) >>> 0;
  let key: string;
  try {
    key = utf8Decoder.decode(bytes.subarray(PREFIX_BYTES));
  } catch (error) {
    throw new StorageCorruptionError(`stored key ${describeBytes(bytes)} is not UTF-8`, { cause: error });
  }
  if (tokenOf(key) !== token) {
    throw new StorageCorruptionError(`stored key ${JSON.stringify(key)} is under token ${token}, not its hash ${tokenOf(key)}`);
  }
  return { key, token };
}

/** Hex of (at most the first 64) bytes, for error messages. */
function describeBytes(bytes: Uint8Array): string {
  const shown = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, 64)).toString("hex");
  return `0x${shown}${bytes.length > 64 ? `... (${bytes.length} bytes)` : ""}`;
}

/** LevelDB bounds [gte, lt) covering the data keys whose token t satisfies low <= t <= high. */
export interface KeyBounds {
  readonly gte: Uint8Array;
  readonly lt: Uint8Array;
}

function boundsOfTokens(low: number, high: number): KeyBounds {
  const gte = new Uint8Array(PREFIX_BYTES);
  writeTokenPrefix(gte, low);
  if (high + 1 === TOKEN_LIMIT) return { gte, lt: DATA_END };
  const lt = new Uint8Array(PREFIX_BYTES);
  writeTokenPrefix(lt, high + 1);
  return { gte, lt };
}

function isToken(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value < TOKEN_LIMIT;
}

/**
 * The LevelDB ranges of a token range (start < t <= end, wrapping when start >= end, start === end
 * is the whole ring), in ring order starting after `start`. Undefined is the whole store from token 0.
 */
export function boundsOfRange(range: TokenRange | undefined): KeyBounds[] {
  if (range === undefined) return [{ gte: DATA_START, lt: DATA_END }];
  const { start, end } = range;
  if (!isToken(start) || !isToken(end)) {
    throw new StorageInputError(`token range bounds must be integers in [0, 2^32), got (${String(start)}, ${String(end)}]`);
  }
  const bounds: KeyBounds[] = [];
  if (start < end) {
    bounds.push(boundsOfTokens(start + 1, end));
  } else {
    // Wraps: the tokens after start up to the top of the ring, then from 0 up to end.
    if (start + 1 < TOKEN_LIMIT) bounds.push(boundsOfTokens(start + 1, TOKEN_LIMIT - 1));
    bounds.push(boundsOfTokens(0, end));
  }
  return bounds;
}
