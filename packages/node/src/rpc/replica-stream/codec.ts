// Encoders for the replica stream's two messages (StreamRequest, StreamResponse), written out by
// hand: protobuf-es's reflective create() + toBinary() took about 10 µs for a one-op request, a
// few percent of a node's CPU per write; this writes the same bytes in well under a microsecond.
// Decoding stays with protobuf-es (fromBinary), which is cheap and checks hostile input.
// codec.test.ts holds the bytes equal to toBinary's for any message.
import type { OpInit, ResultInit } from "./batching.js";

const WIRE_VARINT = 0;
const WIRE_LEN = 2;
const tag = (field: number, wire: number) => (field << 3) | wire;

function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
}

/** Bytes of a length-delimited field (tag, length, payload) with `payload` bytes; tags here are one byte. */
const lenFieldSize = (payload: number) => 1 + varintSize(payload) + payload;

class Writer {
  constructor(
    readonly buf: Buffer,
    public offset: number,
  ) {}

  varint(value: number): void {
    while (value >= 0x80) {
      this.buf[this.offset++] = (value & 0x7f) | 0x80;
      value = Math.floor(value / 128);
    }
    this.buf[this.offset++] = value;
  }

  /** Tag and length of a length-delimited field. */
  lenHeader(field: number, length: number): void {
    this.buf[this.offset++] = tag(field, WIRE_LEN);
    this.varint(length);
  }

  string(field: number, value: string, bytes: number): void {
    this.lenHeader(field, bytes);
    this.offset += this.buf.write(value, this.offset, bytes, "utf8");
  }

  bytes(field: number, value: Uint8Array): void {
    this.lenHeader(field, value.byteLength);
    this.buf.set(value, this.offset);
    this.offset += value.byteLength;
  }

  uint32(field: number, value: number): void {
    this.buf[this.offset++] = tag(field, WIRE_VARINT);
    this.varint(value);
  }
}

// Proto3: a scalar field at its default value (0, "", empty bytes) is not written; a oneof
// member is written whenever it is set, even when empty.

/** Bytes of a uint32 field (0 is not written). */
const uint32FieldSize = (value: number) => (value === 0 ? 0 : 1 + varintSize(value));
/** Bytes of a string or bytes field of `length` bytes (empty is not written). */
const optionalLenFieldSize = (length: number) => (length === 0 ? 0 : lenFieldSize(length));

/** The bytes of one element's message: its id, and its oneof member's body (-1: none set). */
interface ElementSizes {
  readonly id: number;
  readonly body: number;
}

const elementSize = (s: ElementSizes) => uint32FieldSize(s.id) + (s.body >= 0 ? lenFieldSize(s.body) : 0);

/**
 * A message whose only field is `repeated` field 1 of messages that start with `uint32 id = 1`:
 * StreamRequest and StreamResponse. `measure` sizes an element, `writeMember` writes its oneof
 * member; the message goes after `reserve` bytes left for the caller (a Connect envelope's
 * header: no copy to frame it).
 */
function encodeRepeated<T, S extends ElementSizes>(
  items: readonly T[],
  measure: (item: T) => S,
  writeMember: (w: Writer, item: T, s: S) => void,
  reserve: number,
): Buffer {
  const sizes = items.map(measure);
  let total = reserve;
  for (const s of sizes) total += lenFieldSize(elementSize(s));
  const w = new Writer(Buffer.allocUnsafe(total), reserve);
  for (let i = 0; i < items.length; i++) {
    const s = sizes[i]!;
    w.lenHeader(1, elementSize(s));
    if (s.id) w.uint32(1, s.id);
    writeMember(w, items[i]!, s);
  }
  return w.buf;
}

interface OpSizes extends ElementSizes {
  readonly key: number;
  /** UTF-8 bytes of the op's other string field: hint_for of a write, content_type of a coordinate op. */
  readonly otherText: number;
}

function opSizes(op: OpInit): OpSizes {
  const id = op.id ?? 0;
  const o = op.op;
  if (o?.case === "write") {
    const key = Buffer.byteLength(o.value.key ?? "", "utf8");
    const hintFor = Buffer.byteLength(o.value.hintFor ?? "", "utf8");
    const body = optionalLenFieldSize(key) + optionalLenFieldSize(o.value.record?.byteLength ?? 0) + optionalLenFieldSize(hintFor);
    return { id, body, key, otherText: hintFor };
  }
  if (o?.case === "read") {
    const key = Buffer.byteLength(o.value.key ?? "", "utf8");
    return { id, body: optionalLenFieldSize(key), key, otherText: 0 };
  }
  if (o?.case === "coordinate") {
    const v = o.value;
    const key = Buffer.byteLength(v.key ?? "", "utf8");
    const contentType = Buffer.byteLength(v.contentType ?? "", "utf8");
    const body =
      optionalLenFieldSize(key) +
      // `optional bytes value`: written whenever set, even empty (an empty value is not a delete).
      (v.value === undefined ? 0 : lenFieldSize(v.value.byteLength)) +
      optionalLenFieldSize(contentType) +
      optionalLenFieldSize(v.context?.byteLength ?? 0) +
      uint32FieldSize(v.w ?? 0) +
      uint32FieldSize(v.timeoutMs ?? 0);
    return { id, body, key, otherText: contentType };
  }
  return { id, body: -1, key: 0, otherText: 0 };
}

/** toBinary(StreamRequestSchema, create(StreamRequestSchema, { ops })), byte for byte, after `reserve` bytes (see encodeRepeated). */
export function encodeStreamRequest(ops: readonly OpInit[], reserve = 0): Buffer {
  return encodeRepeated(
    ops,
    opSizes,
    (w, op, s) => {
      const o = op.op;
      if (o?.case === "write") {
        w.lenHeader(2, s.body);
        if (s.key) w.string(1, o.value.key!, s.key);
        if (o.value.record?.byteLength) w.bytes(2, o.value.record);
        if (s.otherText) w.string(3, o.value.hintFor!, s.otherText);
      } else if (o?.case === "read") {
        w.lenHeader(3, s.body);
        if (s.key) w.string(1, o.value.key!, s.key);
      } else if (o?.case === "coordinate") {
        const v = o.value;
        w.lenHeader(4, s.body);
        if (s.key) w.string(1, v.key!, s.key);
        if (v.value !== undefined) w.bytes(2, v.value);
        if (s.otherText) w.string(3, v.contentType!, s.otherText);
        if (v.context?.byteLength) w.bytes(4, v.context);
        if (v.w) w.uint32(5, v.w);
        if (v.timeoutMs) w.uint32(6, v.timeoutMs);
      }
    },
    reserve,
  );
}

interface ResultSizes extends ElementSizes {
  readonly message: number;
}

function resultSizes(result: ResultInit): ResultSizes {
  const id = result.id ?? 0;
  const r = result.result;
  if (r?.case === "write") return { id, body: 0, message: 0 };
  if (r?.case === "read") return { id, body: optionalLenFieldSize(r.value.record?.byteLength ?? 0), message: 0 };
  if (r?.case === "error") {
    const message = Buffer.byteLength(r.value.message ?? "", "utf8");
    return { id, body: uint32FieldSize(r.value.code ?? 0) + optionalLenFieldSize(message) + (r.value.declined ? 2 : 0), message };
  }
  if (r?.case === "coordinate") return { id, body: optionalLenFieldSize(r.value.context?.byteLength ?? 0), message: 0 };
  return { id, body: -1, message: 0 };
}

/** toBinary(StreamResponseSchema, create(StreamResponseSchema, { results })), byte for byte, after `reserve` bytes (see encodeRepeated). */
export function encodeStreamResponse(results: readonly ResultInit[], reserve = 0): Buffer {
  return encodeRepeated(
    results,
    resultSizes,
    (w, result, s) => {
      const r = result.result;
      if (r?.case === "write") w.lenHeader(2, 0);
      else if (r?.case === "read") {
        w.lenHeader(3, s.body);
        if (r.value.record?.byteLength) w.bytes(1, r.value.record);
      } else if (r?.case === "error") {
        w.lenHeader(4, s.body);
        if (r.value.code) w.uint32(1, r.value.code);
        if (s.message) w.string(2, r.value.message!, s.message);
        if (r.value.declined) w.uint32(3, 1);
      } else if (r?.case === "coordinate") {
        w.lenHeader(5, s.body);
        if (r.value.context?.byteLength) w.bytes(1, r.value.context);
      }
    },
    reserve,
  );
}
