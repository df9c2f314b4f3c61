import { GossipDecodeError, GossipEncodeError } from "./errors.js";
import type { GossipMessage, GossipMessageType, MemberState, MemberUpdate, RingStatus, SenderInfo } from "./types.js";
import { MAX_PIGGYBACK_LIMIT } from "./config.js";
import { MAX_ADDRESS_BYTES, MAX_ID_BYTES, MAX_SEQ, MAX_SYNC_MEMBERS, messageProblem } from "./validate.js";

/*
 * Wire format (all integers are unsigned LEB128 varints in canonical, shortest form):
 *
 *   u8 version (= 2) | u8 type | varint seq | from | type-specific | varint count | update*count
 *   from    = string id | string address | varint incarnation | ring
 *   ping    : string targetId
 *   ping-req: string target.id | string target.address
 *   update  = string id | string address | u8 state | varint incarnation | ring
 *   ring    = u8 ringStatus | varint ringVersion
 *
 * Version 2 added the ring status; version 1 messages are refused (a cluster upgrades all at once).
 *   string  = varint byteLength | UTF-8 bytes
 *
 * Decoding is strict: unknown version/type/state, non-canonical varints, invalid UTF-8,
 * empty or oversized strings, too many updates and trailing bytes are all rejected, and
 * counts are checked against the bytes remaining before anything is allocated.
 */

const VERSION = 2;

const TYPE_CODES: Readonly<Record<GossipMessageType, number>> = {
  ping: 1,
  ack: 2,
  "ping-req": 3,
  "sync-request": 4,
  "sync-response": 5,
};
const TYPES_BY_CODE: readonly (GossipMessageType | undefined)[] = [undefined, "ping", "ack", "ping-req", "sync-request", "sync-response"];
const STATE_CODES: Readonly<Record<MemberState, number>> = { alive: 0, suspect: 1, dead: 2, left: 3 };
const STATES_BY_CODE: readonly MemberState[] = ["alive", "suspect", "dead", "left"];
const RING_STATUS_CODES: Readonly<Record<RingStatus, number>> = { joining: 0, normal: 1, leaving: 2, left: 3, removed: 4 };
const RING_STATUSES_BY_CODE: readonly RingStatus[] = ["joining", "normal", "leaving", "left", "removed"];

/** Smallest possible encoded update: 1-byte id, 1-byte address, state, incarnation, ring status, ring version. */
const MIN_UPDATE_BYTES = 2 + 2 + 1 + 1 + 1 + 1;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

class Writer {
  private buffer = new Uint8Array(128);
  private length = 0;

  private ensure(extra: number): void {
    if (this.length + extra <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.length + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buffer.subarray(0, this.length));
    this.buffer = next;
  }

  byte(value: number): void {
    this.ensure(1);
    this.buffer[this.length++] = value;
  }

  varint(value: number): void {
    this.ensure(8);
    // Division instead of bit operations: incarnations may exceed 32 bits.
    let rest = value;
    while (rest >= 0x80) {
      this.buffer[this.length++] = (rest % 0x80) | 0x80;
      rest = Math.floor(rest / 0x80);
    }
    this.buffer[this.length++] = rest;
  }

  string(value: string): void {
    const bytes = textEncoder.encode(value);
    this.varint(bytes.length);
    this.ensure(bytes.length);
    this.buffer.set(bytes, this.length);
    this.length += bytes.length;
  }

  finish(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }
}

class Reader {
  private offset = 0;

  constructor(private readonly bytes: Uint8Array) {}

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  byte(what: string): number {
    const value = this.bytes[this.offset];
    if (value === undefined) throw new GossipDecodeError(`truncated message: missing ${what}`);
    this.offset++;
    return value;
  }

  varint(what: string, max: number): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; ; i++) {
      const b = this.byte(what);
      if (i > 0 && b === 0) throw new GossipDecodeError(`non-canonical varint in ${what}`);
      value += (b & 0x7f) * scale;
      if (value > max) throw new GossipDecodeError(`${what} exceeds ${max}`);
      if ((b & 0x80) === 0) return value;
      scale *= 0x80;
      if (i >= 8) throw new GossipDecodeError(`varint too long in ${what}`);
    }
  }

  string(what: string, maxBytes: number): string {
    const length = this.varint(`${what} length`, maxBytes);
    if (length === 0) throw new GossipDecodeError(`${what} must not be empty`);
    if (length > this.remaining) throw new GossipDecodeError(`truncated message: ${what} needs ${length} bytes`);
    const slice = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    try {
      return textDecoder.decode(slice);
    } catch {
      throw new GossipDecodeError(`${what} is not valid UTF-8`);
    }
  }
}

function writeUpdate(w: Writer, u: MemberUpdate): void {
  w.string(u.id);
  w.string(u.address);
  w.byte(STATE_CODES[u.state]);
  w.varint(u.incarnation);
  w.byte(RING_STATUS_CODES[u.ringStatus]);
  w.varint(u.ringVersion);
}

/** Encodes a message; throws GossipEncodeError if the message object is malformed. */
export function encodeMessage(m: GossipMessage): Uint8Array {
  const problem = messageProblem(m);
  if (problem !== undefined) throw new GossipEncodeError(`cannot encode gossip message: ${problem}`);
  const w = new Writer();
  w.byte(VERSION);
  w.byte(TYPE_CODES[m.type]);
  w.varint(m.seq);
  w.string(m.from.id);
  w.string(m.from.address);
  w.varint(m.from.incarnation);
  w.byte(RING_STATUS_CODES[m.from.ringStatus]);
  w.varint(m.from.ringVersion);
  if (m.type === "ping") {
    w.string(m.targetId);
  } else if (m.type === "ping-req") {
    w.string(m.target.id);
    w.string(m.target.address);
  }
  w.varint(m.updates.length);
  for (const u of m.updates) writeUpdate(w, u);
  return w.finish();
}

function readUpdate(r: Reader, index: number): MemberUpdate {
  const id = r.string(`updates[${index}].id`, MAX_ID_BYTES);
  const address = r.string(`updates[${index}].address`, MAX_ADDRESS_BYTES);
  const stateCode = r.byte(`updates[${index}].state`);
  const state = STATES_BY_CODE[stateCode];
  if (state === undefined) throw new GossipDecodeError(`updates[${index}].state has unknown code ${stateCode}`);
  const incarnation = r.varint(`updates[${index}].incarnation`, Number.MAX_SAFE_INTEGER);
  return { id, address, state, incarnation, ...readRing(r, `updates[${index}]`) };
}

function readRing(r: Reader, what: string): { ringStatus: RingStatus; ringVersion: number } {
  const code = r.byte(`${what}.ringStatus`);
  const ringStatus = RING_STATUSES_BY_CODE[code];
  if (ringStatus === undefined) throw new GossipDecodeError(`${what}.ringStatus has unknown code ${code}`);
  return { ringStatus, ringVersion: r.varint(`${what}.ringVersion`, Number.MAX_SAFE_INTEGER) };
}

/** Decodes and strictly validates a message; throws GossipDecodeError on malformed input. */
export function decodeMessage(bytes: Uint8Array): GossipMessage {
  if (!(bytes instanceof Uint8Array)) throw new GossipDecodeError("gossip message must be a Uint8Array");
  const r = new Reader(bytes);
  const version = r.byte("version");
  if (version !== VERSION) throw new GossipDecodeError(`unsupported gossip message version ${version}`);
  const typeCode = r.byte("type");
  const type = TYPES_BY_CODE[typeCode];
  if (type === undefined) throw new GossipDecodeError(`unknown gossip message type code ${typeCode}`);
  const seq = r.varint("seq", MAX_SEQ);
  const from: SenderInfo = {
    id: r.string("from.id", MAX_ID_BYTES),
    address: r.string("from.address", MAX_ADDRESS_BYTES),
    incarnation: r.varint("from.incarnation", Number.MAX_SAFE_INTEGER),
    ...readRing(r, "from"),
  };
  let targetId: string | undefined;
  let target: { id: string; address: string } | undefined;
  if (type === "ping") {
    targetId = r.string("targetId", MAX_ID_BYTES);
  } else if (type === "ping-req") {
    target = { id: r.string("target.id", MAX_ID_BYTES), address: r.string("target.address", MAX_ADDRESS_BYTES) };
  }
  const maxUpdates = type === "sync-request" || type === "sync-response" ? MAX_SYNC_MEMBERS : MAX_PIGGYBACK_LIMIT;
  const count = r.varint("update count", maxUpdates);
  if (count * MIN_UPDATE_BYTES > r.remaining) {
    throw new GossipDecodeError(`truncated message: ${count} updates cannot fit in ${r.remaining} bytes`);
  }
  const updates: MemberUpdate[] = [];
  for (let i = 0; i < count; i++) updates.push(readUpdate(r, i));
  if (r.remaining !== 0) throw new GossipDecodeError(`${r.remaining} trailing bytes after gossip message`);
  switch (type) {
    case "ping":
      return { type, seq, from, targetId: targetId as string, updates };
    case "ping-req":
      return { type, seq, from, target: target as { id: string; address: string }, updates };
    default:
      return { type, seq, from, updates };
  }
}
