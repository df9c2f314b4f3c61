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
  count: number;
  size: number;
}

// Scratch layout reused by every encode: encoding is synchronous and calls out to nothing, so
// one at a time is in use. A put encodes a sibling set several times (the coordinator, each
// replica, the context), and a fresh layout per encode was a measurable share of a node's garbage.
const scratchLayout: ClockLayout = { nodes: [], counters: [], idBytes: [], count: 0, size: 0 };

/** Clocks up to this size are sorted in place in the scratch layout; larger ones by Array#sort. */
const INSERTION_SORT_LIMIT = 16;

function layoutClock(clock: VersionVector): ClockLayout {
  if (clock.size > MAX_CLOCK_ENTRIES) {
    throw new InvalidVersionError(`clock has ${clock.size} entries, more than ${MAX_CLOCK_ENTRIES}`);
  }
  const layout = scratchLayout;
  const { nodes, counters } = layout;
  let count = 0;
  let sorted = true;
  for (const [node, counter] of clock) {
    if (count > 0 && compareNodeIds(nodes[count - 1] as NodeId, node) > 0) sorted = false;
    nodes[count] = node;
    counters[count] = counter;
    count++;
  }
  nodes.length = count;
  counters.length = count;
  if (!sorted) sortLayout(nodes, counters, clock);
  const { idBytes } = layout;
  idBytes.length = count;
  let size = varintSize(count);
  for (let k = 0; k < count; k++) {
    const node = nodes[k] as NodeId;
    const counter = counters[k] as number;
    if (!Number.isSafeInteger(counter) || counter < 1) {
      throw new InvalidVersionError(`clock counter of node ${JSON.stringify(node)} must be a positive integer, got ${counter}`);
    }
    const bytes = nodeIdBytes(node);
    idBytes[k] = bytes;
    size += varintSize(bytes.length) + bytes.length + varintSize(counter);
  }
  layout.count = count;
  layout.size = size;
  return layout;
}

/** Sorts a clock's entries by node id (Map keys are distinct, so no ties). */
function sortLayout(nodes: NodeId[], counters: number[], clock: VersionVector): void {
  if (nodes.length > INSERTION_SORT_LIMIT) {
    nodes.sort(compareNodeIds);
    for (let k = 0; k < nodes.length; k++) counters[k] = clock.get(nodes[k] as NodeId) as number;
    return;
  }
  for (let k = 1; k < nodes.length; k++) {
    const node = nodes[k] as NodeId;
    const counter = counters[k] as number;
    let j = k - 1;
    while (j >= 0 && compareNodeIds(nodes[j] as NodeId, node) > 0) {
      nodes[j + 1] = nodes[j] as NodeId;
      counters[j + 1] = counters[j] as number;
      j--;
    }
    nodes[j + 1] = node;
    counters[j + 1] = counter;
  }
}

/** The position of `node` in the layout's sorted nodes, or -1. */
function indexOfNode(layout: ClockLayout, node: NodeId): number {
  let low = 0;
  let high = layout.count - 1;
  while (low <= high) {
    const mid = (low + high) >>> 1;
    const order = compareNodeIds(layout.nodes[mid] as NodeId, node);
    if (order === 0) return mid;
    if (order < 0) low = mid + 1;
    else high = mid - 1;
  }
  return -1;
}

function writeClock(out: Uint8Array, pos: number, layout: ClockLayout): number {
  pos = writeVarint(out, pos, layout.count);
  for (let k = 0; k < layout.count; k++) {
    const bytes = layout.idBytes[k] as Uint8Array;
    pos = writeVarint(out, pos, bytes.length);
    out.set(bytes, pos);
    pos += bytes.length;
    pos = writeVarint(out, pos, layout.counters[k] as number);
  }
  return pos;
}

// Small encodings (sibling sets, contexts) are views into a shared slab. A typed array of more
// than 64 bytes made with `new Uint8Array(n)` gets a backing store of its own outside the V8 heap
// (malloc, and a sweep by the GC to free it): about 1 µs for a 133-byte record against 0.05 µs
// for a view, and a put encodes a record on each of its replicas. The encodings are short-lived
// (written to the store, sent to a peer); one that is kept keeps at most its slab alive. Bytes
// handed out are never handed out again: the slab is only ever filled forward.
const SLAB_BYTES = 16 * 1024;
const SLAB_MAX_OUTPUT = 1024;
let slab = new ArrayBuffer(SLAB_BYTES);
let slabUsed = 0;

export function allocateOutput(size: number): Uint8Array {
  if (size > SLAB_MAX_OUTPUT) return new Uint8Array(size);
  if (slabUsed + size > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabUsed = 0;
  }
  const out = new Uint8Array(slab, slabUsed, size);
  // 8-byte aligned, as node's own Buffer pool does.
  slabUsed += (size + 7) & ~7;
  return out;
}

/** Canonical binary encoding of a sibling set. Throws InvalidVersionError for a set that breaks its invariants (unsorted siblings, a dot the clock does not cover, bad ids, counters or timestamps). */
export function encodeSiblingSet(set: SiblingSet): Uint8Array {
  const clock = layoutClock(set.clock);
  const { siblings } = set;
  let typed = false;
  for (let k = 0; k < siblings.length; k++) if ((siblings[k] as Sibling).contentType !== undefined) typed = true;
  let size = 1 + clock.size + varintSize(siblings.length);
  let previousIndex = -1;
  let previousCounter = 0;
  for (let k = 0; k < siblings.length; k++) {
    const sibling = siblings[k] as Sibling;
    const { node, counter } = sibling.dot;
    const index = indexOfNode(clock, node);
    if (index === -1 || counter > (clock.counters[index] as number)) {
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
    const valueTag = sibling.value === null ? 0 : sibling.value.length + 1;
    size += varintSize(index) + varintSize(counter) + varintSize(sibling.timestamp) + varintSize(valueTag) + (valueTag === 0 ? 0 : valueTag - 1);
    if (typed) size += contentType === undefined ? 1 : varintSize(contentType.length + 1) + contentType.length;
  }

  const out = allocateOutput(size);
  out[0] = typed ? SIBLING_SET_FORMAT_V2 : SIBLING_SET_FORMAT_V1;
  let pos = writeClock(out, 1, clock);
  pos = writeVarint(out, pos, siblings.length);
  for (let k = 0; k < siblings.length; k++) {
    const sibling = siblings[k] as Sibling;
    // Checked in the loop above: the node is in the clock.
    pos = writeVarint(out, pos, indexOfNode(clock, sibling.dot.node));
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
        for (let c = 0; c < contentType.length; c++) out[pos++] = contentType.charCodeAt(c);
      }
    }
  }
  return out;
}

/** The opaque context handed to clients: the set's clock, canonically encoded. The empty clock encodes to empty bytes. */
export function encodeContext(clock: VersionVector): Uint8Array {
  if (clock.size === 0) return new Uint8Array(0);
  const layout = layoutClock(clock);
  const out = allocateOutput(1 + layout.size);
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
  return readNodeId(bytes, 0, bytes.length, reader);
}

// Decoded node ids, by a hash of their bytes: a node decodes the same few ids in every clock it
// reads, and a fresh string for each (built from a spread of the bytes) was a measurable share of
// a node's garbage under writes. Direct-mapped: a colliding id replaces the slot's.
const ID_SLOTS = 256;
const idSlotBytes: Array<Uint8Array | undefined> = new Array(ID_SLOTS).fill(undefined);
const idSlotIds: NodeId[] = new Array<NodeId>(ID_SLOTS).fill("");

/** The node id in `bytes[start, start + length)`, checked to be UTF-8. */
function readNodeId(bytes: Uint8Array, start: number, length: number, reader: Reader): NodeId {
  let hash = 0x811c9dc5;
  let ascii = true;
  for (let k = start; k < start + length; k++) {
    const b = bytes[k] as number;
    if (b >= 0x80) ascii = false;
    hash = Math.imul(hash ^ b, 0x01000193);
  }
  const slot = hash >>> 24;
  const cached = idSlotBytes[slot];
  if (cached !== undefined && cached.length === length) {
    let same = true;
    for (let k = 0; k < length; k++) {
      if (cached[k] !== bytes[start + k]) {
        same = false;
        break;
      }
    }
    if (same) return idSlotIds[slot] as NodeId;
  }
  const view = bytes.subarray(start, start + length);
  let id: NodeId;
  if (ascii) {
    id = String.fromCharCode.apply(null, view as unknown as number[]);
  } else {
    try {
      id = utf8Decoder.decode(view);
    } catch {
      throw reader.error("node id is not valid UTF-8");
    }
  }
  idSlotBytes[slot] = view.slice();
  idSlotIds[slot] = id;
  return id;
}

interface ClockRead {
  readonly clock: Map<NodeId, number>;
  /** The clock's entries in order: valid until the next readClock. */
  readonly nodes: NodeId[];
  readonly counters: number[];
}

// Scratch arrays for the entries of the clock being read: decoding is synchronous, one at a time.
const scratchNodes: NodeId[] = [];
const scratchCounters: number[] = [];

function readClock(reader: Reader, allowEmpty: boolean): ClockRead {
  const count = reader.varint("clock entry count");
  if (count > MAX_CLOCK_ENTRIES) throw reader.error(`clock has ${count} entries, more than ${MAX_CLOCK_ENTRIES}`);
  if (count === 0 && !allowEmpty) throw reader.error("non-canonical empty context (the empty context is zero bytes)");
  const clock = new Map<NodeId, number>();
  const nodes = scratchNodes;
  const counters = scratchCounters;
  nodes.length = 0;
  counters.length = 0;
  let previous: NodeId | undefined;
  for (let k = 0; k < count; k++) {
    const length = reader.positive("node id length");
    if (length > MAX_NODE_ID_BYTES) throw reader.error(`node id of ${length} bytes is longer than ${MAX_NODE_ID_BYTES}`);
    if (length > reader.remaining) throw reader.error(`truncated node id (needs ${length} bytes, ${reader.remaining} left)`);
    const start = reader.pos;
    reader.pos += length;
    const node = readNodeId(reader.bytes, start, length, reader);
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
  for (let k = 0; k < bytes.length; k++) {
    const b = bytes[k] as number;
    if (b < 0x20 || b > 0x7e) throw reader.error("content type is not printable ASCII");
  }
  return String.fromCharCode.apply(null, bytes as unknown as number[]);
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
