// Shared by the fuzz tests in this folder (no test dependencies, so it may sit in src/): a seeded
// PRNG, a scanner for the fields of protobuf wire bytes, and the byte-level mutations applied to
// valid encodings (bit flips, truncation, extension, insertion, deletion, duplication, splices of
// two valid encodings, length and varint fields forged huge or overlong).

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export class Rng {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("pick from nothing");
    return items[this.int(items.length)] as T;
  }

  bytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = this.int(256);
    return out;
  }
}

// --- protobuf wire format ----------------------------------------------------------------------

/** A varint inside protobuf bytes: a tag, a length prefix, or a scalar value. */
export interface WireField {
  readonly start: number;
  readonly end: number;
  readonly role: "tag" | "length" | "varint";
}

function readVarint(bytes: Uint8Array, pos: number): { value: number; end: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let i = pos; i < bytes.length && i < pos + 10; i++) {
    const b = bytes[i] as number;
    value += (b & 0x7f) * scale;
    scale *= 0x80;
    if ((b & 0x80) === 0) return { value, end: i + 1 };
  }
  return undefined;
}

/**
 * The varints of protobuf message bytes (tags, length prefixes, scalar values), descending into
 * length-delimited fields that themselves parse as messages. Best effort: stops at anything that
 * does not parse.
 */
export function protobufFields(bytes: Uint8Array, offset = 0, end = bytes.length, depth = 0): WireField[] {
  const fields: WireField[] = [];
  let pos = offset;
  while (pos < end) {
    const tag = readVarint(bytes, pos);
    if (tag === undefined || tag.end > end) return fields;
    fields.push({ start: pos, end: tag.end, role: "tag" });
    pos = tag.end;
    const wireType = tag.value % 8;
    if (wireType === 0) {
      const v = readVarint(bytes, pos);
      if (v === undefined || v.end > end) return fields;
      fields.push({ start: pos, end: v.end, role: "varint" });
      pos = v.end;
    } else if (wireType === 1) {
      pos += 8;
    } else if (wireType === 5) {
      pos += 4;
    } else if (wireType === 2) {
      const length = readVarint(bytes, pos);
      if (length === undefined || length.end + length.value > end) return fields;
      fields.push({ start: pos, end: length.end, role: "length" });
      const inner = length.end;
      pos = length.end + length.value;
      if (depth < 4 && length.value > 0) {
        const nested = protobufFields(bytes, inner, pos, depth + 1);
        // Only a clean parse of the whole payload counts as a nested message (not a string or bytes).
        if (nested.length > 0 && nestedParsesWhole(bytes, inner, pos)) for (const field of nested) fields.push(field);
      }
    } else {
      return fields;
    }
  }
  return fields;
}

function nestedParsesWhole(bytes: Uint8Array, start: number, end: number): boolean {
  let pos = start;
  while (pos < end) {
    const tag = readVarint(bytes, pos);
    if (tag === undefined || tag.value < 8) return false;
    pos = tag.end;
    const wireType = tag.value % 8;
    if (wireType === 0) {
      const v = readVarint(bytes, pos);
      if (v === undefined) return false;
      pos = v.end;
    } else if (wireType === 1) pos += 8;
    else if (wireType === 5) pos += 4;
    else if (wireType === 2) {
      const length = readVarint(bytes, pos);
      if (length === undefined) return false;
      pos = length.end + length.value;
    } else return false;
  }
  return pos === end;
}

/** Canonical unsigned LEB128 of any non-negative integer (also past 2^53 and 2^64). */
export function leb128(value: bigint): Uint8Array {
  const out: number[] = [];
  let rest = value;
  while (rest >= 0x80n) {
    out.push(Number(rest & 0x7fn) | 0x80);
    rest >>= 7n;
  }
  out.push(Number(rest));
  return Uint8Array.from(out);
}

const HUGE_VALUES: readonly bigint[] = [
  0n,
  1n,
  0x7fn,
  0x80n,
  0xffffn,
  2n ** 31n - 1n,
  2n ** 31n,
  2n ** 32n - 1n,
  2n ** 32n,
  2n ** 53n,
  2n ** 63n,
  2n ** 64n - 1n,
  2n ** 64n,
  2n ** 70n,
];

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.byteLength, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.byteLength;
  }
  return out;
}

/** A varint forged by a hostile peer: huge, at a boundary, overlong, negative-as-uint64, or never ending. */
export function forgedVarint(rng: Rng): Uint8Array {
  switch (rng.int(5)) {
    case 0:
    case 1:
      return leb128(rng.pick(HUGE_VALUES));
    case 2: {
      // -1 as a protobuf int64/int32: ten bytes.
      return Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    }
    case 3: {
      const v = Array.from(leb128(BigInt(rng.int(1000))));
      for (let k = 0; k <= rng.int(4); k++) {
        v[v.length - 1]! |= 0x80;
        v.push(0);
      }
      return Uint8Array.from(v);
    }
    default:
      return new Uint8Array(1 + rng.int(12)).fill(0xff);
  }
}

export type ByteMutation = "flip" | "set" | "truncate" | "extend" | "insert" | "delete" | "duplicate" | "splice" | "length-huge" | "varint-forged";

export const BYTE_MUTATIONS: readonly ByteMutation[] = [
  "flip",
  "set",
  "truncate",
  "extend",
  "insert",
  "delete",
  "duplicate",
  "splice",
  "length-huge",
  "varint-forged",
];

/**
 * One mutation of `valid` (protobuf bytes); `other` is a second valid encoding a splice takes its
 * tail from. Field mutations fall back to a bit flip when the bytes have no such field.
 */
export function mutateBytes(rng: Rng, valid: Uint8Array, other: Uint8Array, kind: ByteMutation = rng.pick(BYTE_MUTATIONS)): Uint8Array {
  const n = valid.byteLength;
  const at = (extra = 0) => rng.int(n + extra);
  switch (kind) {
    case "flip": {
      if (n === 0) return rng.bytes(1 + rng.int(4));
      const out = valid.slice();
      const flips = 1 + rng.int(3);
      for (let k = 0; k < flips; k++) out[at()]! ^= 1 << rng.int(8);
      return out;
    }
    case "set": {
      if (n === 0) return rng.bytes(1);
      const out = valid.slice();
      out[at()] = rng.pick([0x00, 0x01, 0x7f, 0x80, 0xff, rng.int(256)]);
      return out;
    }
    case "truncate":
      return n === 0 ? valid : valid.slice(0, at());
    case "extend":
      return concat(valid, rng.bytes(1 + rng.int(24)));
    case "insert": {
      const i = at(1);
      return concat(valid.subarray(0, i), rng.bytes(1 + rng.int(9)), valid.subarray(i));
    }
    case "delete": {
      const i = at(1);
      return concat(valid.subarray(0, i), valid.subarray(i + 1 + rng.int(8)));
    }
    case "duplicate": {
      const i = at(1);
      return concat(valid.subarray(0, i), valid.subarray(i, i + 1 + rng.int(32)), valid.subarray(i));
    }
    case "splice":
      return concat(valid.subarray(0, at(1)), other.subarray(rng.int(other.byteLength + 1)));
    case "length-huge":
    case "varint-forged": {
      const role = kind === "length-huge" ? "length" : rng.pick(["varint", "tag"] as const);
      const fields = protobufFields(valid).filter((f) => f.role === role);
      if (fields.length === 0) return mutateBytes(rng, valid, other, "flip");
      const field = rng.pick(fields);
      return concat(valid.subarray(0, field.start), forgedVarint(rng), valid.subarray(field.end));
    }
  }
}

/** A gRPC / Connect-streaming envelope: flags, 4-byte big-endian length (or a forged one), data. */
export function envelope(data: Uint8Array, flags = 0, length = data.byteLength): Uint8Array {
  const out = new Uint8Array(5 + data.byteLength);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, length >>> 0);
  out.set(data, 5);
  return out;
}
