// On-disk layout of the hint store's LevelDB (keys and values are raw bytes):
//
//   0x00 "format"    -> UTF-8 FORMAT_MARKER              (checked at open)
//   0x00 "next-seq"  -> u64 BE                            (sequence high-water mark, never reused)
//   0x01 u16 BE len(target) target-UTF-8 u64 BE seq      -> hint value
//
//   hint value = u8 VALUE_VERSION, f64 BE createdAt, u32 BE len(key), key-UTF-8, record bytes
//
// The target is length-prefixed rather than separated, so any target string is safe and the hints of
// one target form one contiguous key range ordered by sequence number (= enqueue order).

import { HintStoreFormatError, HintStoreInputError } from "./errors.js";

export const FORMAT_MARKER = "dynamo-ts/hintstore@1";
export const VALUE_VERSION = 1;

/** A node id is an address-like name; anything longer is a bug upstream, not a real node id. */
export const MAX_TARGET_BYTES = 1024;
export const MAX_SEQ = Number.MAX_SAFE_INTEGER;

const META_PREFIX = 0x00;
const HINT_PREFIX = 0x01;
const SEQ_BYTES = 8;
const VALUE_HEADER_BYTES = 1 + 8 + 4;
const ID_SEQ_CHARS = 16;
const ID_SEPARATOR = "@";

export const FORMAT_KEY = Buffer.from([META_PREFIX, ...Buffer.from("format", "utf8")]);
export const NEXT_SEQ_KEY = Buffer.from([META_PREFIX, ...Buffer.from("next-seq", "utf8")]);

/** Range covering every hint key of every target. */
export const ALL_HINTS_RANGE = { gte: Buffer.from([HINT_PREFIX]), lt: Buffer.from([HINT_PREFIX + 1]) };

export function validateTarget(target: unknown): asserts target is string {
  if (typeof target !== "string" || target.length === 0) {
    throw new HintStoreInputError(`hint target must be a non-empty string, got ${describe(target)}`);
  }
  if (!target.isWellFormed()) {
    throw new HintStoreInputError(`hint target ${JSON.stringify(target)} contains lone surrogates (not valid UTF-16)`);
  }
  const bytes = Buffer.byteLength(target, "utf8");
  if (bytes > MAX_TARGET_BYTES) {
    throw new HintStoreInputError(`hint target is ${bytes} bytes; at most ${MAX_TARGET_BYTES} are allowed`);
  }
}

export function validateKey(key: unknown): asserts key is string {
  // A lone surrogate would be replaced by U+FFFD on its way through UTF-8 and the hint replayed to another key.
  if (typeof key !== "string" || key.length === 0) {
    throw new HintStoreInputError(`hint key must be a non-empty string, got ${describe(key)}`);
  }
  if (!key.isWellFormed()) {
    throw new HintStoreInputError(`hint key ${JSON.stringify(key)} contains lone surrogates (not valid UTF-16)`);
  }
}

function describe(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value) : typeof value;
}

function targetPrefix(target: string): Buffer {
  const targetBytes = Buffer.from(target, "utf8");
  const prefix = Buffer.allocUnsafe(1 + 2 + targetBytes.length);
  prefix[0] = HINT_PREFIX;
  prefix.writeUInt16BE(targetBytes.length, 1);
  targetBytes.copy(prefix, 3);
  return prefix;
}

function writeSeq(buffer: Buffer, seq: number, offset: number): void {
  buffer.writeBigUInt64BE(BigInt(seq), offset);
}

function readSeq(buffer: Buffer, offset: number): number {
  const seq = buffer.readBigUInt64BE(offset);
  if (seq > BigInt(MAX_SEQ)) {
    throw new HintStoreFormatError(`hint sequence ${seq} exceeds ${MAX_SEQ}`);
  }
  return Number(seq);
}

export function encodeHintKey(target: string, seq: number): Buffer {
  const prefix = targetPrefix(target);
  const key = Buffer.allocUnsafe(prefix.length + SEQ_BYTES);
  prefix.copy(key, 0);
  writeSeq(key, seq, prefix.length);
  return key;
}

/** Inclusive key range of every hint of one target, in sequence order. */
export function targetRange(target: string): { gte: Buffer; lte: Buffer } {
  return { gte: encodeHintKey(target, 0), lte: encodeHintKey(target, MAX_SEQ) };
}

export function decodeHintKey(key: Buffer): { target: string; seq: number } {
  if (key.length < 1 + 2 + 1 + SEQ_BYTES || key[0] !== HINT_PREFIX) {
    throw new HintStoreFormatError(`malformed hint key ${key.toString("hex")}`);
  }
  const targetLength = key.readUInt16BE(1);
  if (key.length !== 3 + targetLength + SEQ_BYTES) {
    throw new HintStoreFormatError(`malformed hint key ${key.toString("hex")} (target length ${targetLength})`);
  }
  return { target: key.toString("utf8", 3, 3 + targetLength), seq: readSeq(key, 3 + targetLength) };
}

export function encodeSeqValue(seq: number): Buffer {
  const value = Buffer.allocUnsafe(SEQ_BYTES);
  writeSeq(value, seq, 0);
  return value;
}

export function decodeSeqValue(value: Buffer): number {
  if (value.length !== SEQ_BYTES) {
    throw new HintStoreFormatError(`malformed sequence high-water mark ${value.toString("hex")}`);
  }
  return readSeq(value, 0);
}

export interface HintValue {
  readonly key: string;
  readonly createdAt: number;
  readonly record: Uint8Array;
}

export function encodeHintValue(key: string, createdAt: number, record: Uint8Array): Buffer {
  const keyBytes = Buffer.byteLength(key, "utf8");
  const value = Buffer.allocUnsafe(VALUE_HEADER_BYTES + keyBytes + record.length);
  value[0] = VALUE_VERSION;
  value.writeDoubleBE(createdAt, 1);
  value.writeUInt32BE(keyBytes, 9);
  value.write(key, VALUE_HEADER_BYTES, "utf8");
  value.set(record, VALUE_HEADER_BYTES + keyBytes);
  return value;
}

/** Only the timestamp: what open() needs to rebuild the in-memory summaries without decoding records. */
export function decodeHintCreatedAt(value: Buffer): number {
  checkValueHeader(value);
  return value.readDoubleBE(1);
}

export function decodeHintValue(value: Buffer): HintValue {
  checkValueHeader(value);
  const keyBytes = value.readUInt32BE(9);
  const recordStart = VALUE_HEADER_BYTES + keyBytes;
  if (recordStart > value.length) {
    throw new HintStoreFormatError(`malformed hint value: key length ${keyBytes} exceeds value length ${value.length}`);
  }
  return {
    createdAt: value.readDoubleBE(1),
    key: value.toString("utf8", VALUE_HEADER_BYTES, recordStart),
    // A plain Uint8Array view (not a Buffer) so callers get exactly the documented type.
    record: new Uint8Array(value.buffer, value.byteOffset + recordStart, value.length - recordStart),
  };
}

function checkValueHeader(value: Buffer): void {
  if (value.length < VALUE_HEADER_BYTES) {
    throw new HintStoreFormatError(`malformed hint value: ${value.length} bytes is shorter than the header`);
  }
  if (value[0] !== VALUE_VERSION) {
    throw new HintStoreFormatError(`hint value has version ${value[0]}; this code reads version ${VALUE_VERSION}`);
  }
  const createdAt = value.readDoubleBE(1);
  if (!Number.isFinite(createdAt)) {
    throw new HintStoreFormatError(`hint value has a non-finite createdAt (${createdAt})`);
  }
}

/**
 * Hint ids are `<16 hex digits of the sequence>@<target>`: fixed-width hex sorts like the number, so ids
 * sort in enqueue order, and the target is recoverable from an id alone (ack() needs no lookup table).
 */
export function formatHintId(seq: number, target: string): string {
  return seq.toString(16).padStart(ID_SEQ_CHARS, "0") + ID_SEPARATOR + target;
}

const ID_SEQ_PATTERN = /^[0-9a-f]{16}$/;

export function parseHintId(id: unknown): { seq: number; target: string } {
  if (typeof id !== "string") {
    throw new HintStoreInputError(`a hint id must be a string, got ${typeof id}`);
  }
  const seqHex = id.slice(0, ID_SEQ_CHARS);
  const target = id.slice(ID_SEQ_CHARS + 1);
  if (!ID_SEQ_PATTERN.test(seqHex) || id[ID_SEQ_CHARS] !== ID_SEPARATOR || target.length === 0) {
    throw new HintStoreInputError(`${JSON.stringify(id)} is not a hint id (expected <16 hex digits>@<target>)`);
  }
  const seq = Number.parseInt(seqHex, 16);
  if (seq > MAX_SEQ) {
    throw new HintStoreInputError(`hint id ${JSON.stringify(id)} has a sequence beyond ${MAX_SEQ}`);
  }
  return { seq, target };
}
