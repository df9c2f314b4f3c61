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

export function decodeHintKey(bytes: Uint8Array): { target: string; seq: number } {
  const key = asBuffer(bytes);
  if (key.length < 1 + 2 + 1 + SEQ_BYTES || key[0] !== HINT_PREFIX) {
    throw new HintStoreFormatError(`malformed hint key ${hexPreview(key)}`);
  }
  const targetLength = key.readUInt16BE(1);
  if (key.length !== 3 + targetLength + SEQ_BYTES) {
    throw new HintStoreFormatError(`malformed hint key ${hexPreview(key)} (target length ${targetLength})`);
  }
  const target = decodeUtf8(key, 3, 3 + targetLength, "hint key target");
  return { target, seq: readSeq(key, 3 + targetLength) };
}

export function encodeSeqValue(seq: number): Buffer {
  const value = Buffer.allocUnsafe(SEQ_BYTES);
  writeSeq(value, seq, 0);
  return value;
}

export function decodeSeqValue(bytes: Uint8Array): number {
  const value = asBuffer(bytes);
  if (value.length !== SEQ_BYTES) {
    throw new HintStoreFormatError(`malformed sequence high-water mark ${hexPreview(value)}`);
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

/** Only the timestamp: what expiry-style scans need without decoding the key or record. */
export function decodeHintCreatedAt(bytes: Uint8Array): number {
  const value = asBuffer(bytes);
  checkValueHeader(value);
  return value.readDoubleBE(1);
}

export interface HintHeader {
  readonly key: string;
  readonly createdAt: number;
  /** Length of the record that follows the key (not copied). */
  readonly recordBytes: number;
}

/** Everything but the record: what open() needs to rebuild the in-memory index. */
export function decodeHintHeader(bytes: Uint8Array): HintHeader {
  const value = asBuffer(bytes);
  checkValueHeader(value);
  const keyBytes = value.readUInt32BE(9);
  const recordStart = VALUE_HEADER_BYTES + keyBytes;
  if (recordStart > value.length) {
    throw new HintStoreFormatError(`malformed hint value: key length ${keyBytes} exceeds value length ${value.length}`);
  }
  if (keyBytes === 0) {
    // validateKey() never lets an empty key in, so an empty one is damage, not data.
    throw new HintStoreFormatError("malformed hint value: empty key");
  }
  return {
    createdAt: value.readDoubleBE(1),
    key: decodeUtf8(value, VALUE_HEADER_BYTES, recordStart, "hint value key"),
    recordBytes: value.length - recordStart,
  };
}

export function decodeHintValue(bytes: Uint8Array): HintValue {
  const value = asBuffer(bytes);
  const { key, createdAt, recordBytes } = decodeHintHeader(value);
  const recordStart = value.length - recordBytes;
  return {
    createdAt,
    key,
    // A plain Uint8Array view (not a Buffer) so callers get exactly the documented type.
    record: new Uint8Array(value.buffer, value.byteOffset + recordStart, recordBytes),
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

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Invalid UTF-8 is damage: a lenient decode would turn it into U+FFFD and the hint would be replayed to
 * (or acknowledged under) another key or target than the one that was written.
 */
function decodeUtf8(buffer: Buffer, start: number, end: number, what: string): string {
  try {
    return strictUtf8.decode(buffer.subarray(start, end));
  } catch (error) {
    throw new HintStoreFormatError(`${what} is not valid UTF-8: ${hexPreview(buffer.subarray(start, end))}`, { cause: error });
  }
}

/** A Buffer view of the same bytes (no copy), so the decoders accept any Uint8Array. */
function asBuffer(bytes: Uint8Array): Buffer {
  if (Buffer.isBuffer(bytes)) {
    return bytes;
  }
  if (!(bytes instanceof Uint8Array)) {
    throw new HintStoreFormatError(`expected bytes, got ${typeof bytes}`);
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Error messages name damaged bytes, but a damaged multi-megabyte value must not become a multi-megabyte message. */
function hexPreview(bytes: Buffer): string {
  const limit = 64;
  return bytes.length <= limit ? bytes.toString("hex") : `${bytes.subarray(0, limit).toString("hex")}... (${bytes.length} bytes)`;
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
  // An id's target must be one a hint could have been stored for: a lone surrogate would otherwise be
  // encoded as U+FFFD and name another target's hint.
  validateTarget(target);
  return { seq, target };
}
