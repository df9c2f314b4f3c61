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

interface OpSizes {
  readonly body: number;
  readonly op: number;
  readonly key: number;
  readonly hintFor: number;
}

function opSizes(op: OpInit): OpSizes {
  const id = op.id ?? 0;
  const idSize = id === 0 ? 0 : 1 + varintSize(id);
  const o = op.op;
  let key = 0;
  let hintFor = 0;
  let body = -1; // no oneof member set
  if (o?.case === "write") {
    key = Buffer.byteLength(o.value.key ?? "", "utf8");
    hintFor = Buffer.byteLength(o.value.hintFor ?? "", "utf8");
    const record = o.value.record?.byteLength ?? 0;
    body = (key ? lenFieldSize(key) : 0) + (record ? lenFieldSize(record) : 0) + (hintFor ? lenFieldSize(hintFor) : 0);
  } else if (o?.case === "read") {
    key = Buffer.byteLength(o.value.key ?? "", "utf8");
    body = key ? lenFieldSize(key) : 0;
  }
  return { body, op: idSize + (body >= 0 ? lenFieldSize(body) : 0), key, hintFor };
}

/**
 * toBinary(StreamRequestSchema, create(StreamRequestSchema, { ops })), byte for byte, after
 * `reserve` bytes left for the caller (a Connect envelope's header: no copy to frame it).
 */
export function encodeStreamRequest(ops: readonly OpInit[], reserve = 0): Buffer {
  const sizes = ops.map(opSizes);
  let total = reserve;
  for (const s of sizes) total += lenFieldSize(s.op);
  const w = new Writer(Buffer.allocUnsafe(total), reserve);
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    const s = sizes[i]!;
    w.lenHeader(1, s.op);
    if (op.id) w.uint32(1, op.id);
    const o = op.op;
    if (o?.case === "write") {
      w.lenHeader(2, s.body);
      if (s.key) w.string(1, o.value.key!, s.key);
      if (o.value.record?.byteLength) w.bytes(2, o.value.record);
      if (s.hintFor) w.string(3, o.value.hintFor!, s.hintFor);
    } else if (o?.case === "read") {
      w.lenHeader(3, s.body);
      if (s.key) w.string(1, o.value.key!, s.key);
    }
  }
  return w.buf;
}

interface ResultSizes {
  readonly body: number;
  readonly result: number;
  readonly message: number;
}

function resultSizes(result: ResultInit): ResultSizes {
  const id = result.id ?? 0;
  const idSize = id === 0 ? 0 : 1 + varintSize(id);
  const r = result.result;
  let body = -1;
  let message = 0;
  if (r?.case === "write") body = 0;
  else if (r?.case === "read") {
    const record = r.value.record?.byteLength ?? 0;
    body = record ? lenFieldSize(record) : 0;
  } else if (r?.case === "error") {
    const code = r.value.code ?? 0;
    message = Buffer.byteLength(r.value.message ?? "", "utf8");
    body = (code ? 1 + varintSize(code) : 0) + (message ? lenFieldSize(message) : 0);
  }
  return { body, result: idSize + (body >= 0 ? lenFieldSize(body) : 0), message };
}

/** toBinary(StreamResponseSchema, create(StreamResponseSchema, { results })), byte for byte, after `reserve` bytes (see encodeStreamRequest). */
export function encodeStreamResponse(results: readonly ResultInit[], reserve = 0): Buffer {
  const sizes = results.map(resultSizes);
  let total = reserve;
  for (const s of sizes) total += lenFieldSize(s.result);
  const w = new Writer(Buffer.allocUnsafe(total), reserve);
  for (let i = 0; i < results.length; i++) {
    const result = results[i]!;
    const s = sizes[i]!;
    w.lenHeader(1, s.result);
    if (result.id) w.uint32(1, result.id);
    const r = result.result;
    if (r?.case === "write") w.lenHeader(2, 0);
    else if (r?.case === "read") {
      w.lenHeader(3, s.body);
      if (r.value.record?.byteLength) w.bytes(1, r.value.record);
    } else if (r?.case === "error") {
      w.lenHeader(4, s.body);
      if (r.value.code) w.uint32(1, r.value.code);
      if (s.message) w.string(2, r.value.message!, s.message);
    }
  }
  return w.buf;
}
