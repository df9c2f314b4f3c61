import { compareNodeIds } from "./clock.js";
import type { NodeId, VersionVector } from "./clock.js";
import { InvalidContextError, InvalidEncodingError, InvalidVersionError } from "./errors.js";
import { isValidContentType, MAX_CONTENT_TYPE_BYTES, type Sibling, type SiblingSet } from "./siblings.js";

/*
 * Binary format (all integers are unsigned LEB128 varints in their shortest form, at most 2^53 - 1):
 *
 *   sibling set := 0x01 clock siblingCount sibling*                      no sibling has a content type
 *                | 0x02 clock siblingCount siblingWithType*              some sibling has a content type
 *   context     := (nothing, for the empty clock) | 0xC1 clock            (clock has >= 1 entry)
 *   clock       := entryCount (idLength idUtf8 counter)*                  sorted by node id, no duplicates
 *   sibling     := nodeIndex counter timestamp valueTag valueBytes?
 *   siblingWithType := sibling typeTag typeBytes?
 *
 * typeTag is 0 for no content type (always for a tombstone), otherwise the content type's length
 * + 1; the content type is 1..255 printable ASCII bytes. Format 0x02 was added after 0x01: a set
 * without content types still encodes as 0x01, byte for byte as before (so records written
 * before it, and their anti-entropy digests, are unchanged), and a 0x02 set must have at least
 * one content type (otherwise it would have two encodings).
 *
 * nodeIndex points into the clock's entries (a sibling's dot is always covered by the clock, so its
 * node is always there): node ids are written once per set. valueTag is 0 for a tombstone, otherwise
 * the value length + 1. Siblings are sorted by (node, counter). Every field has exactly one
 * encoding, so equal sets encode to equal bytes.
 */

export const SIBLING_SET_FORMAT_V1 = 0x01;
/** Sibling sets in which some sibling carries a content type. */
export const SIBLING_SET_FORMAT_V2 = 0x02;
export const CONTEXT_FORMAT_V1 = 0xc1;
/** Longest node id accepted, in UTF-8 bytes. */
export const MAX_NODE_ID_BYTES = 255;
/** Most entries a clock may have; bounds what a forged context can make a key's clock grow by. */
export const MAX_CLOCK_ENTRIES = 4096;

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

// Node ids repeat on every request; encoding each one once is worth a small bounded cache.
const NODE_ID_CACHE_LIMIT = 1024;
const nodeIdBytesCache = new Map<NodeId, Uint8Array>();

/** A node id's UTF-8 bytes (validated, cached). */
export function nodeIdBytes(node: NodeId): Uint8Array {
  let bytes = nodeIdBytesCache.get(node);
  if (bytes !== undefined) return bytes;
  if (node.length === 0) throw new InvalidVersionError("node id must not be empty");
  if (!node.isWellFormed()) throw new InvalidVersionError(`node id ${JSON.stringify(node)} is not well-formed Unicode`);
  bytes = utf8Encoder.encode(node);
  if (bytes.length > MAX_NODE_ID_BYTES) {
    throw new InvalidVersionError(`node id is ${bytes.length} bytes in UTF-8, longer than ${MAX_NODE_ID_BYTES}`);
  }
  if (nodeIdBytesCache.size >= NODE_ID_CACHE_LIMIT) nodeIdBytesCache.clear();
  nodeIdBytesCache.set(node, bytes);
  return bytes;
}

export function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    size++;
  }
  return size;
}

export function writeVarint(out: Uint8Array, pos: number, value: number): number {
  while (value >= 0x80) {
    out[pos++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  out[pos++] = value;
  return pos;
}

interface ClockLayout {
  readonly nodes: NodeId[];
  readonly counters: number[];
  readonly idBytes: Uint8Array[];
  readonly size: number;
}

function layoutClock(clock: VersionVector): ClockLayout {
  if (clock.size > MAX_CLOCK_ENTRIES) {
    throw new InvalidVersionError(`clock has ${clock.size} entries, more than ${MAX_CLOCK_ENTRIES}`);
  }
  const nodes = [...clock.keys()].sort(compareNodeIds);
  const counters: number[] = [];
  const idBytes: Uint8Array[] = [];
  let size = varintSize(nodes.length);
  for (const node of nodes) {
    const counter = clock.get(node) as number;
    if (!Number.isSafeInteger(counter) || counter < 1) {
      throw new InvalidVersionError(`clock counter of node ${JSON.stringify(node)} must be a positive integer, got ${counter}`);
    }
    const bytes = nodeIdBytes(node);
    counters.push(counter);
    idBytes.push(bytes);
    size += varintSize(bytes.length) + bytes.length + varintSize(counter);
  }
  return { nodes, counters, idBytes, size };
}

function writeClock(out: Uint8Array, pos: number, layout: ClockLayout): number {
  pos = writeVarint(out, pos, layout.nodes.length);
  for (let k = 0; k < layout.nodes.length; k++) {
    const bytes = layout.idBytes[k] as Uint8Array;
    pos = writeVarint(out, pos, bytes.length);
    out.set(bytes, pos);
    pos += bytes.length;
    pos = writeVarint(out, pos, layout.counters[k] as number);
  }
  return pos;
}

/** Canonical binary encoding of a sibling set. Throws InvalidVersionError for a set that breaks its invariants (unsorted siblings, a dot the clock does not cover, bad ids, counters or timestamps). */
export function encodeSiblingSet(set: SiblingSet): Uint8Array {
  const clock = layoutClock(set.clock);
  const nodeIndex = new Map<NodeId, number>();
  clock.nodes.forEach((node, index) => nodeIndex.set(node, index));

  const indexes: number[] = [];
  const typed = set.siblings.some((sibling) => sibling.contentType !== undefined);
  let size = 1 + clock.size + varintSize(set.siblings.length);
  let previousIndex = -1;
  let previousCounter = 0;
  for (const sibling of set.siblings) {
    const { node, counter } = sibling.dot;
    const index = nodeIndex.get(node);
    if (index === undefined || counter > (clock.counters[index] as number)) {
      throw new InvalidVersionError(`sibling dot (${JSON.stringify(node)}, ${counter}) is not covered by the set's clock`);
    }
    if (!Number.isSafeInteger(counter) || counter < 1) {
      throw new InvalidVersionError(`sibling dot counter must be a positive integer, got ${counter}`);
    }
    if (index < previousIndex || (index === previousIndex && counter <= previousCounter)) {
      throw new InvalidVersionError("siblings are not in canonical (node, counter) order or repeat a dot");
    }
    if (!Number.isSafeInteger(sibling.timestamp) || sibling.timestamp < 0) {
      throw new InvalidVersionError(`sibling timestamp must be a non-negative integer, got ${sibling.timestamp}`);
    }
    const { contentType } = sibling;
    if (contentType !== undefined && (sibling.value === null || !isValidContentType(contentType))) {
      throw new InvalidVersionError(
        sibling.value === null
          ? "a tombstone has no content type"
          : `content type ${JSON.stringify(contentType)} is not 1..${MAX_CONTENT_TYPE_BYTES} printable ASCII characters`,
      );
    }
    previousIndex = index;
    previousCounter = counter;
    indexes.push(index);
    const valueTag = sibling.value === null ? 0 : sibling.value.length + 1;
    size += varintSize(index) + varintSize(counter) + varintSize(sibling.timestamp) + varintSize(valueTag) + (valueTag === 0 ? 0 : valueTag - 1);
    if (typed) size += contentType === undefined ? 1 : varintSize(contentType.length + 1) + contentType.length;
  }

  const out = new Uint8Array(size);
  out[0] = typed ? SIBLING_SET_FORMAT_V2 : SIBLING_SET_FORMAT_V1;
  let pos = writeClock(out, 1, clock);
  pos = writeVarint(out, pos, set.siblings.length);
  set.siblings.forEach((sibling, k) => {
    pos = writeVarint(out, pos, indexes[k] as number);
    pos = writeVarint(out, pos, sibling.dot.counter);
    pos = writeVarint(out, pos, sibling.timestamp);
    if (sibling.value === null) {
      out[pos++] = 0;
    } else {
      pos = writeVarint(out, pos, sibling.value.length + 1);
      out.set(sibling.value, pos);
      pos += sibling.value.length;
    }
    if (typed) {
      const { contentType } = sibling;
      if (contentType === undefined) {
        out[pos++] = 0;
      } else {
        pos = writeVarint(out, pos, contentType.length + 1);
        // Printable ASCII (checked above): one byte per character.
        for (let k = 0; k < contentType.length; k++) out[pos++] = contentType.charCodeAt(k);
      }
    }
  });
  return out;
}

/** The opaque context handed to clients: the set's clock, canonically encoded. The empty clock encodes to empty bytes. */
export function encodeContext(clock: VersionVector): Uint8Array {
  if (clock.size === 0) return new Uint8Array(0);
  const layout = layoutClock(clock);
  const out = new Uint8Array(1 + layout.size);
  out[0] = CONTEXT_FORMAT_V1;
  writeClock(out, 1, layout);
  return out;
}

type ErrorClass = new (message: string) => InvalidEncodingError;

/** A cursor over untrusted bytes: every read is bounds-checked and every length is checked against what is left before anything is allocated. */
export class Reader {
  pos = 0;
  constructor(
    readonly bytes: Uint8Array,
    readonly fail: ErrorClass,
  ) {}

  error(what: string): InvalidEncodingError {
    return new this.fail(`${what} at byte ${this.pos} of ${this.bytes.length}`);
  }

  get remaining(): number {
    return this.bytes.length - this.pos;
  }

  byte(what: string): number {
    const value = this.bytes[this.pos];
    if (value === undefined) throw this.error(`truncated ${what}`);
    this.pos++;
    return value;
  }

  varint(what: string): number {
    let value = 0;
    let scale = 1;
    for (let length = 1; ; length++) {
      const b = this.byte(what);
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        if (b === 0 && length > 1) throw this.error(`non-canonical (overlong) varint in ${what}`);
        if (value > Number.MAX_SAFE_INTEGER) throw this.error(`${what} exceeds 2^53 - 1`);
        return value;
      }
      if (length === 8) throw this.error(`${what} exceeds 2^53 - 1`);
      scale *= 0x80;
    }
  }

  positive(what: string): number {
    const value = this.varint(what);
    if (value === 0) throw this.error(`${what} must be positive`);
    return value;
  }

  take(length: number, what: string): Uint8Array {
    if (length > this.remaining) throw this.error(`truncated ${what} (needs ${length} bytes, ${this.remaining} left)`);
    const view = this.bytes.subarray(this.pos, this.pos + length);
    this.pos += length;
    return view;
  }

  end(): void {
    if (this.remaining !== 0) throw this.error(`${this.remaining} trailing bytes`);
  }
}

export function decodeNodeId(bytes: Uint8Array, reader: Reader): NodeId {
  let ascii = true;
  for (let k = 0; k < bytes.length; k++) {
    if ((bytes[k] as number) >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return String.fromCharCode(...bytes);
  try {
    return utf8Decoder.decode(bytes);
  } catch {
    throw reader.error("node id is not valid UTF-8");
  }
}

function readClock(reader: Reader, allowEmpty: boolean): { clock: Map<NodeId, number>; nodes: NodeId[]; counters: number[] } {
  const count = reader.varint("clock entry count");
  if (count > MAX_CLOCK_ENTRIES) throw reader.error(`clock has ${count} entries, more than ${MAX_CLOCK_ENTRIES}`);
  if (count === 0 && !allowEmpty) throw reader.error("non-canonical empty context (the empty context is zero bytes)");
  const clock = new Map<NodeId, number>();
  const nodes: NodeId[] = [];
  const counters: number[] = [];
  let previous: NodeId | undefined;
  for (let k = 0; k < count; k++) {
    const length = reader.positive("node id length");
    if (length > MAX_NODE_ID_BYTES) throw reader.error(`node id of ${length} bytes is longer than ${MAX_NODE_ID_BYTES}`);
    const node = decodeNodeId(reader.take(length, "node id"), reader);
    if (previous !== undefined && compareNodeIds(previous, node) >= 0) {
      throw reader.error("clock entries are not sorted by node id or repeat a node");
    }
    const counter = reader.positive("clock counter");
    clock.set(node, counter);
    nodes.push(node);
    counters.push(counter);
    previous = node;
  }
  return { clock, nodes, counters };
}

/** Decodes bytes from encodeSiblingSet. Values are views into `bytes` (no copy): do not modify `bytes` afterwards. Throws InvalidEncodingError on anything malformed or non-canonical. */
export function decodeSiblingSet(bytes: Uint8Array): SiblingSet {
  const reader = new Reader(bytes, InvalidEncodingError);
  const format = reader.byte("format byte");
  if (format !== SIBLING_SET_FORMAT_V1 && format !== SIBLING_SET_FORMAT_V2) {
    reader.pos = 0;
    throw reader.error(`unknown sibling set format 0x${format.toString(16).padStart(2, "0")}`);
  }
  const typed = format === SIBLING_SET_FORMAT_V2;
  let anyType = false;
  const { clock, nodes, counters } = readClock(reader, true);
  const count = reader.varint("sibling count");
  // Each sibling takes at least 4 bytes: reject a forged count before looping on it.
  if (count > reader.remaining / 4) throw reader.error(`sibling count ${count} does not fit in the remaining bytes`);
  const siblings: Sibling[] = [];
  let previousIndex = -1;
  let previousCounter = 0;
  for (let k = 0; k < count; k++) {
    const index = reader.varint("sibling node index");
    const node = nodes[index];
    if (node === undefined) throw reader.error(`sibling node index ${index} is outside the clock's ${nodes.length} entries`);
    const counter = reader.positive("sibling counter");
    if (counter > (counters[index] as number)) throw reader.error("sibling dot is not covered by the clock");
    if (index < previousIndex || (index === previousIndex && counter <= previousCounter)) {
      throw reader.error("siblings are not in canonical (node, counter) order or repeat a dot");
    }
    previousIndex = index;
    previousCounter = counter;
    const timestamp = reader.varint("sibling timestamp");
    const valueTag = reader.varint("sibling value length");
    const value = valueTag === 0 ? null : reader.take(valueTag - 1, "sibling value");
    const contentType = typed ? readContentType(reader, value === null) : undefined;
    if (contentType === undefined) {
      siblings.push({ dot: { node, counter }, value, timestamp });
    } else {
      anyType = true;
      siblings.push({ dot: { node, counter }, value, timestamp, contentType });
    }
  }
  if (typed && !anyType) throw reader.error("non-canonical format 0x02 for a set without content types (that is format 0x01)");
  reader.end();
  return { clock, siblings };
}

/** A sibling's content type (format 0x02): none, or 1..255 printable ASCII bytes; a tombstone has none. */
function readContentType(reader: Reader, tombstone: boolean): string | undefined {
  const tag = reader.varint("sibling content type length");
  if (tag === 0) return undefined;
  if (tombstone) throw reader.error("a tombstone has a content type");
  if (tag === 1) throw reader.error("empty content type (no content type is tag 0)");
  if (tag - 1 > MAX_CONTENT_TYPE_BYTES) throw reader.error(`content type of ${tag - 1} bytes is longer than ${MAX_CONTENT_TYPE_BYTES}`);
  const bytes = reader.take(tag - 1, "sibling content type");
  for (const b of bytes) if (b < 0x20 || b > 0x7e) throw reader.error("content type is not printable ASCII");
  return String.fromCharCode(...bytes);
}

/** Decodes a client-supplied context. Empty bytes are the empty clock (a blind write). Throws InvalidContextError on anything malformed. */
export function decodeContext(bytes: Uint8Array): VersionVector {
  if (bytes.length === 0) return new Map();
  const reader = new Reader(bytes, InvalidContextError);
  const format = reader.byte("format byte");
  if (format !== CONTEXT_FORMAT_V1) {
    reader.pos = 0;
    throw reader.error(`unknown context format 0x${format.toString(16).padStart(2, "0")}`);
  }
  const { clock } = readClock(reader, false);
  reader.end();
  return clock;
}
