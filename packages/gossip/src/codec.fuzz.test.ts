// Mutation fuzzing of what a node does with gossip bytes from the network: decodeMessage, then
// Swim.receive of whatever decodes, then encodeMessage of everything Swim sends in return (the node
// encodes its answers and its own periodic messages with encodeMessage; a message it cannot encode
// is an exception in its gossip timer).
//
// Inputs are valid encodings damaged the way a hostile or broken peer would: bit flips, byte
// changes, truncations, insertions, deletions, duplicated slices, splices of two valid messages,
// and every varint field (seq, string lengths, incarnations, the update count) replaced by huge,
// boundary, overlong or unterminated values.
//
// Contracts: decodeMessage returns a message that re-encodes to exactly the input (the format is
// canonical) or throws GossipDecodeError; messageProblem/encodeMessage never throw
// anything but GossipEncodeError on arbitrary objects; Swim never throws on a decoded message and
// everything it sends afterwards encodes.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeMessage, encodeMessage } from "./codec.js";
import { MAX_PIGGYBACK_LIMIT } from "./config.js";
import { GossipDecodeError, GossipEncodeError } from "./errors.js";
import { mulberry32 } from "./simulation.js";
import { Swim } from "./swim.js";
import type { GossipMessage, MemberUpdate, Outgoing, RingStatus } from "./types.js";
import { MAX_ADDRESS_BYTES, MAX_ID_BYTES, MAX_SEQ, MAX_SYNC_MEMBERS, messageProblem } from "./validate.js";

/** Fixed seeds: a failure reproduces with the same seed (fast-check prints the path as well). */
const SEED = 0x90551b;
/** Decoding a message of a few KiB takes microseconds; this only catches loops and big allocations. */

interface Tally {
  accepted: number;
  rejected: number;
}

const hex = (bytes: Uint8Array): string => {
  const all = Buffer.from(bytes).toString("hex");
  return all.length > 200 ? `${all.slice(0, 200)}... (${bytes.length} bytes)` : all;
};

/** decodeMessage's contract; returns the message when the bytes are one. */
function decodeContract(input: Uint8Array, tally: Tally): GossipMessage | undefined {
  let decoded: GossipMessage;
  try {
    decoded = decodeMessage(input);
  } catch (error) {
    expect(error).toBeInstanceOf(GossipDecodeError);
    tally.rejected++;
    return undefined;
  }
  const again = encodeMessage(decoded);
  if (!Buffer.from(again).equals(input)) throw new Error(`accepted ${hex(input)} but it re-encodes to ${hex(again)}`);
  tally.accepted++;
  return decoded;
}

// --- valid messages, over small alphabets so that ids meet (the receiver's own id included) -----

const SELF = "self";
const id = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(SELF, "a", "b", "c", "\uFEFFa", "é", "日本") },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", minLength: 1, maxLength: 12 }) },
  { weight: 1, arbitrary: fc.constant("x".repeat(MAX_ID_BYTES)) },
);
const address = fc.oneof({ weight: 4, arbitrary: id.map((x) => `${x}:7946`) }, { weight: 1, arbitrary: fc.constant("h".repeat(MAX_ADDRESS_BYTES)) });
const incarnation = fc.oneof(fc.nat(20), fc.constant(Number.MAX_SAFE_INTEGER - 1), fc.constant(Number.MAX_SAFE_INTEGER), fc.maxSafeNat());
const seq = fc.oneof(fc.nat(10), fc.constant(MAX_SEQ), fc.nat(MAX_SEQ));
const ringStatus = fc.constantFrom<RingStatus>("joining", "normal", "leaving", "left", "removed");
const sender = fc.record({ id, address, incarnation, ringStatus, ringVersion: incarnation });
const update: fc.Arbitrary<MemberUpdate> = fc.record({
  id,
  address,
  state: fc.constantFrom("alive", "suspect", "dead", "left"),
  incarnation,
  ringStatus,
  ringVersion: incarnation,
});
const updates = fc.array(update, { maxLength: 10 });

const message: fc.Arbitrary<GossipMessage> = fc.oneof(
  fc.record({ type: fc.constant("ping"), seq, from: sender, targetId: id, updates }),
  fc.record({ type: fc.constant("ack"), seq, from: sender, updates }),
  fc.record({ type: fc.constant("ping-req"), seq, from: sender, target: fc.record({ id, address }), updates }),
  fc.record({ type: fc.constant("sync-request"), seq, from: sender, updates: fc.array(update, { maxLength: 30 }) }),
  fc.record({ type: fc.constant("sync-response"), seq, from: sender, updates: fc.array(update, { maxLength: 30 }) }),
) as fc.Arbitrary<GossipMessage>;
const encoded = message.map(encodeMessage);

// --- varint fields of a valid message --------------------------------------------------------------

interface Field {
  readonly start: number;
  readonly end: number;
  readonly role: string;
}

/** Lists the varint fields of a VALID message (the test's own output). */
function messageFields(bytes: Uint8Array): Field[] {
  const fields: Field[] = [];
  let pos = 2;
  const varint = (role: string): number => {
    const start = pos;
    let value = 0;
    let scale = 1;
    for (;;) {
      const b = bytes[pos++]!;
      value += (b & 0x7f) * scale;
      scale *= 0x80;
      if ((b & 0x80) === 0) break;
    }
    fields.push({ start, end: pos, role });
    return value;
  };
  const string = (role: string): void => {
    const length = varint(`${role} length`);
    pos = pos + length;
  };
  const type = bytes[1];
  varint("seq");
  string("from.id");
  string("from.address");
  varint("from.incarnation");
  pos++; // from.ringStatus
  varint("from.ringVersion");
  if (type === 1) string("targetId");
  if (type === 3) {
    string("target.id");
    string("target.address");
  }
  const count = varint("update count");
  for (let k = 0; k < count; k++) {
    string("update id");
    string("update address");
    pos++; // state
    varint("update incarnation");
    pos++; // ring status
    varint("update ringVersion");
  }
  expect(pos).toBe(bytes.length);
  return fields;
}

function replaceField(bytes: Uint8Array, field: Field, replacement: readonly number[]): Uint8Array {
  return new Uint8Array(Buffer.concat([bytes.subarray(0, field.start), Uint8Array.from(replacement), bytes.subarray(field.end)]));
}

function leb128(value: bigint): number[] {
  const out: number[] = [];
  let rest = value;
  while (rest >= 0x80n) {
    out.push(Number(rest & 0x7fn) | 0x80);
    rest >>= 7n;
  }
  out.push(Number(rest));
  return out;
}

function overlong(value: bigint, extra: number): number[] {
  const bytes = leb128(value);
  for (let k = 0; k < extra; k++) {
    bytes[bytes.length - 1]! |= 0x80;
    bytes.push(0);
  }
  return bytes;
}

const boundaryValue = fc.oneof(
  fc.constantFrom(
    0n,
    1n,
    127n,
    128n,
    BigInt(MAX_ID_BYTES),
    BigInt(MAX_ID_BYTES + 1),
    BigInt(MAX_ADDRESS_BYTES),
    BigInt(MAX_ADDRESS_BYTES + 1),
    BigInt(MAX_PIGGYBACK_LIMIT),
    BigInt(MAX_PIGGYBACK_LIMIT + 1),
    BigInt(MAX_SYNC_MEMBERS),
    BigInt(MAX_SYNC_MEMBERS + 1),
    2n ** 31n,
    2n ** 32n - 1n,
    2n ** 32n,
    2n ** 53n - 1n,
    2n ** 53n,
    2n ** 63n,
    2n ** 64n - 1n,
    2n ** 64n,
    2n ** 70n,
  ),
  fc.bigInt({ min: 0n, max: 2n ** 72n }),
);

const fieldReplacement: fc.Arbitrary<number[]> = fc.oneof(
  { weight: 6, arbitrary: boundaryValue.map(leb128) },
  { weight: 2, arbitrary: fc.tuple(fc.bigInt({ min: 0n, max: 2n ** 53n }), fc.integer({ min: 1, max: 4 })).map(([v, extra]) => overlong(v, extra)) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 12 }).map((n) => new Array<number>(n).fill(0xff)) },
);

// --- byte-level mutations ------------------------------------------------------------------------

type Mutation =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "set"; at: number; byte: number }
  | { kind: "truncate"; at: number }
  | { kind: "extend"; bytes: Uint8Array }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "delete"; at: number; length: number }
  | { kind: "duplicate"; at: number; length: number }
  | { kind: "splice"; at: number; from: number }
  | { kind: "field"; which: number; bytes: number[] };

const position = fc.nat({ max: 1 << 20 });
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: position, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({
    kind: fc.constant("set" as const),
    at: position,
    byte: fc.oneof(fc.constantFrom(0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x7f, 0x80, 0xff), fc.nat({ max: 255 })),
  }),
  fc.record({ kind: fc.constant("truncate" as const), at: position }),
  fc.record({ kind: fc.constant("extend" as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant("insert" as const), at: position, bytes: fc.uint8Array({ minLength: 1, maxLength: 9 }) }),
  fc.record({ kind: fc.constant("delete" as const), at: position, length: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant("duplicate" as const), at: position, length: fc.integer({ min: 1, max: 24 }) }),
  fc.record({ kind: fc.constant("splice" as const), at: position, from: position }),
  fc.record({ kind: fc.constant("field" as const), which: position, bytes: fieldReplacement }),
);
const mutations = fc.array(mutation, { minLength: 1, maxLength: 4 });

function mutate(valid: Uint8Array, other: Uint8Array, ms: readonly Mutation[]): Uint8Array {
  let out = Array.from(valid);
  const fields = messageFields(valid);
  for (const m of ms) {
    if (m.kind !== "field" || fields.length === 0) continue;
    const field = fields[m.which % fields.length]!;
    const shift = out.length - valid.length;
    out.splice(field.start + shift, field.end - field.start, ...m.bytes);
  }
  for (const m of ms) {
    const at = (n: number) => (out.length === 0 ? 0 : n % (out.length + 1));
    switch (m.kind) {
      case "flip":
        if (out.length > 0) out[m.at % out.length]! ^= 1 << m.bit;
        break;
      case "set":
        if (out.length > 0) out[m.at % out.length] = m.byte;
        break;
      case "truncate":
        out.length = at(m.at) === out.length && out.length > 0 ? out.length - 1 : at(m.at);
        break;
      case "extend":
        out.push(...m.bytes);
        break;
      case "insert":
        out.splice(at(m.at), 0, ...m.bytes);
        break;
      case "delete":
        out.splice(at(m.at), m.length);
        break;
      case "duplicate": {
        const start = at(m.at);
        out.splice(start, 0, ...out.slice(start, start + m.length));
        break;
      }
      case "splice":
        out = [...out.slice(0, at(m.at)), ...Array.from(other.subarray(other.length === 0 ? 0 : m.from % (other.length + 1)))];
        break;
      case "field":
        break;
    }
  }
  return Uint8Array.from(out);
}

// --- what the node does with a decoded message ---------------------------------------------------

/** Every message Swim hands the node to send must encode, or the node's gossip loop throws. */
function encodesAll(out: readonly Outgoing[], after: string): void {
  for (const { message } of out) {
    try {
      encodeMessage(message);
    } catch (error) {
      throw new Error(`Swim produced a message it cannot encode ${after}: ${(error as Error).message}`, { cause: error });
    }
  }
}

/** A member that already knows a few peers, as a node does. */
function member(seed: number): Swim {
  const swim = new Swim({ id: SELF, address: `${SELF}:7946`, incarnation: 3, random: mulberry32(seed), now: 0 });
  swim.receive(
    "",
    {
      type: "sync-response",
      seq: 0,
      from: { id: "a", address: "a:7946", incarnation: 1, ringStatus: "normal", ringVersion: 0 },
      updates: [{ id: "b", address: "b:7946", state: "alive", incarnation: 1, ringStatus: "normal", ringVersion: 0 }],
    },
    0,
  );
  swim.drainChanges();
  return swim;
}

/** Delivers `messages` as the node does (receive, send its answers) and runs its timer for a while. */
function deliver(swim: Swim, messages: readonly GossipMessage[], start: number): void {
  let now = start;
  for (const m of messages) {
    const description = `after receiving ${JSON.stringify(m).slice(0, 300)}`;
    encodesAll(swim.receive("", m, now), description);
    for (let k = 0; k < 4; k++) {
      now = Math.max(now + 1, swim.nextDeadline());
      encodesAll(swim.tick(now), description);
    }
    swim.drainChanges();
  }
}

describe("decodeMessage under mutation", () => {
  it("decodes mutated valid messages canonically or throws GossipDecodeError", () => {
    const tally: Tally = { accepted: 0, rejected: 0 };
    fc.assert(
      fc.property(encoded, encoded, mutations, (valid, other, ms) => {
        decodeContract(mutate(valid, other, ms), tally);
      }),
      { seed: SEED, numRuns: 4000 },
    );
    expect(tally.accepted).toBeGreaterThan(0);
    expect(tally.rejected).toBeGreaterThan(tally.accepted);
  });

  it("survives every varint field (seq, lengths, incarnations, the update count) set huge, to a boundary, overlong or unterminated", () => {
    const tally: Tally = { accepted: 0, rejected: 0 };
    const roles = new Set<string>();
    fc.assert(
      fc.property(encoded, fc.nat(), fieldReplacement, (valid, which, replacement) => {
        const fields = messageFields(valid);
        const field = fields[which % fields.length]!;
        roles.add(field.role);
        decodeContract(replaceField(valid, field, replacement), tally);
      }),
      { seed: SEED + 1, numRuns: 4000 },
    );
    expect([...roles].sort()).toEqual(
      [
        "from.address length",
        "from.id length",
        "from.incarnation",
        "from.ringVersion",
        "seq",
        "target.address length",
        "target.id length",
        "targetId length",
        "update address length",
        "update count",
        "update id length",
        "update incarnation",
        "update ringVersion",
      ].sort(),
    );
    expect(tally.rejected).toBeGreaterThan(0);
  });

  it("rejects a forged update count on a full sync message at once, whatever the count", () => {
    const full: GossipMessage = {
      type: "sync-response",
      seq: 1,
      from: { id: "a", address: "a:1", incarnation: 0, ringStatus: "normal", ringVersion: 0 },
      updates: Array.from({ length: MAX_SYNC_MEMBERS }, (_, i) => ({
        id: `m${i}`,
        address: `m${i}:1`,
        state: "alive" as const,
        incarnation: i,
        ringStatus: "normal" as const,
        ringVersion: i,
      })),
    };
    const valid = encodeMessage(full);
    const count = messageFields(valid).find((f) => f.role === "update count")!;
    const tally: Tally = { accepted: 0, rejected: 0 };
    for (const forged of [BigInt(MAX_SYNC_MEMBERS - 1), BigInt(MAX_SYNC_MEMBERS + 1), 2n ** 32n, 2n ** 53n - 1n, 2n ** 64n]) {
      expect(decodeContract(replaceField(valid, count, leb128(forged)), tally)).toBeUndefined();
    }
  });
});

describe("validation of message objects", () => {
  it("messageProblem never throws and encodeMessage throws only GossipEncodeError, on any object", () => {
    const hostile = fc.oneof(
      fc.anything(),
      // Almost-valid messages with one field replaced by anything.
      fc
        .tuple(message, fc.constantFrom("type", "seq", "from", "targetId", "target", "updates"), fc.anything())
        .map(([m, key, value]) => ({ ...m, [key]: value })),
      fc.tuple(message, fc.constantFrom("id", "address", "incarnation"), fc.anything()).map(([m, key, value]) => ({ ...m, from: { ...m.from, [key]: value } })),
      fc.tuple(message, fc.anything()).map(([m, value]) => ({ ...m, updates: [...m.updates, value] })),
    );
    fc.assert(
      fc.property(hostile, (value) => {
        const problem = messageProblem(value);
        expect(problem === undefined || typeof problem === "string").toBe(true);
        try {
          encodeMessage(value as GossipMessage);
          expect(problem).toBeUndefined();
        } catch (error) {
          expect(error).toBeInstanceOf(GossipEncodeError);
          expect(problem).toBeDefined();
        }
      }),
      { seed: SEED + 2, numRuns: 3000 },
    );
  });
});

describe("Swim fed with decoded hostile messages", () => {
  it("never throws, and every message it sends afterwards still encodes", () => {
    const tally: Tally = { accepted: 0, rejected: 0 };
    fc.assert(
      fc.property(fc.array(fc.tuple(encoded, encoded, fc.option(mutations, { freq: 3 })), { minLength: 1, maxLength: 6 }), fc.nat(), (inputs, seed) => {
        const swim = member(seed);
        const decoded = inputs
          .map(([valid, other, ms]) => decodeContract(ms === null ? valid : mutate(valid, other, ms), tally))
          .filter((m): m is GossipMessage => m !== undefined);
        deliver(swim, decoded, 1_000);
      }),
      { seed: SEED + 3, numRuns: 600 },
    );
    expect(tally.accepted).toBeGreaterThan(0);
  });

  it("keeps encoding its own messages after a peer claims it is suspect at the highest incarnation", () => {
    // A claim about self at incarnation 2^53 - 1 is valid on the wire; refuting it must not take
    // the member's own incarnation past what the codec can carry.
    const claim: GossipMessage = {
      type: "ack",
      seq: 0,
      from: { id: "a", address: "a:7946", incarnation: 1, ringStatus: "normal", ringVersion: 0 },
      updates: [{ id: SELF, address: `${SELF}:7946`, state: "suspect", incarnation: Number.MAX_SAFE_INTEGER, ringStatus: "normal", ringVersion: 0 }],
    };
    const bytes = encodeMessage(claim);
    expect(decodeMessage(bytes)).toEqual(claim);
    deliver(member(1), [decodeMessage(bytes)], 1_000);
  });
});
