import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeMessage, encodeMessage } from "./codec.js";
import { GossipDecodeError, GossipEncodeError } from "./errors.js";
import { RING_STATUSES, type GossipMessage, type MemberUpdate } from "./types.js";
import { MAX_ID_BYTES } from "./validate.js";

const text = (maxLength: number) => fc.string({ unit: "grapheme", minLength: 1, maxLength }).filter((s) => new TextEncoder().encode(s).length <= MAX_ID_BYTES);
const incarnation = fc.oneof(fc.nat(1000), fc.constant(Number.MAX_SAFE_INTEGER), fc.maxSafeNat());
const seq = fc.nat(0xffff_ffff);
const ringStatus = fc.constantFrom(...RING_STATUSES);
const sender = fc.record({ id: text(20), address: text(30), incarnation, ringStatus, ringVersion: incarnation });
const update: fc.Arbitrary<MemberUpdate> = fc.record({
  id: text(20),
  address: text(30),
  state: fc.constantFrom("alive", "suspect", "dead", "left"),
  incarnation,
  ringStatus,
  ringVersion: incarnation,
});
const updates = fc.array(update, { maxLength: 12 });

const message: fc.Arbitrary<GossipMessage> = fc.oneof(
  fc.record({ type: fc.constant("ping"), seq, from: sender, targetId: text(20), updates }),
  fc.record({ type: fc.constant("ack"), seq, from: sender, updates }),
  fc.record({
    type: fc.constant("ping-req"),
    seq,
    from: sender,
    target: fc.record({ id: text(20), address: text(30) }),
    updates,
  }),
  fc.record({ type: fc.constant("sync-request"), seq, from: sender, updates: fc.array(update, { maxLength: 40 }) }),
  fc.record({ type: fc.constant("sync-response"), seq, from: sender, updates: fc.array(update, { maxLength: 40 }) }),
) as fc.Arbitrary<GossipMessage>;

/** Decoding must either succeed canonically or fail with GossipDecodeError, never anything else. */
function decodesStrictly(bytes: Uint8Array): void {
  let decoded: GossipMessage;
  try {
    decoded = decodeMessage(bytes);
  } catch (error) {
    expect(error).toBeInstanceOf(GossipDecodeError);
    return;
  }
  // The format is canonical: anything accepted re-encodes to exactly the same bytes.
  expect(encodeMessage(decoded)).toEqual(bytes);
}

const ping: GossipMessage = {
  type: "ping",
  seq: 7,
  from: { id: "a", address: "a:1", incarnation: 3, ringStatus: "joining", ringVersion: 2 },
  targetId: "b",
  updates: [{ id: "c", address: "c:1", state: "suspect", incarnation: 300, ringStatus: "normal", ringVersion: 1 }],
};

describe("codec", () => {
  it("round-trips every well-formed message", () => {
    fc.assert(
      fc.property(message, (m) => {
        expect(decodeMessage(encodeMessage(m))).toEqual(m);
      }),
      { numRuns: 400 },
    );
  });

  it("rejects random garbage with GossipDecodeError only", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), decodesStrictly), { numRuns: 2000 });
  });

  it("rejects garbage that starts with a valid header", () => {
    const prefix = fc.tuple(fc.constant(1), fc.integer({ min: 1, max: 5 }));
    fc.assert(
      fc.property(prefix, fc.uint8Array({ maxLength: 120 }), ([version, type], rest) => {
        decodesStrictly(Uint8Array.from([version, type, ...rest]));
      }),
      { numRuns: 2000 },
    );
  });

  it("rejects every truncation and survives every single-byte corruption of a valid message", () => {
    fc.assert(
      fc.property(message, fc.nat(), fc.integer({ min: 0, max: 255 }), (m, position, value) => {
        const bytes = encodeMessage(m);
        const cut = position % bytes.length;
        expect(() => decodeMessage(bytes.subarray(0, cut))).toThrow(GossipDecodeError);
        const corrupted = bytes.slice();
        corrupted[cut] = value;
        decodesStrictly(corrupted);
      }),
      { numRuns: 500 },
    );
  });

  it("names the problem in specific rejections", () => {
    const bytes = encodeMessage(ping);
    expect(() => decodeMessage(new Uint8Array())).toThrow(/missing version/);
    expect(() => decodeMessage(Uint8Array.from([1, ...bytes.subarray(1)]))).toThrow(/unsupported gossip message version 1/);
    expect(() => decodeMessage(Uint8Array.from([2, 9, ...bytes.subarray(2)]))).toThrow(/unknown gossip message type code 9/);
    expect(() => decodeMessage(Uint8Array.from([...bytes, 0]))).toThrow(/1 trailing bytes/);
    // an unknown ring status code in from (the byte after from.incarnation)
    const ringAt = 3 + 1 + 1 + 1 + 3 + 1; // version, type, seq 7, id "a", address "a:1", incarnation 3
    expect(bytes[ringAt]).toBe(0); // joining
    const badRing = Uint8Array.from(bytes);
    badRing[ringAt] = 5;
    expect(() => decodeMessage(badRing)).toThrow(/from.ringStatus has unknown code 5/);
    // seq 7 written non-canonically as 0x87 0x00
    expect(() => decodeMessage(Uint8Array.from([2, 1, 0x87, 0x00, ...bytes.subarray(3)]))).toThrow(/non-canonical varint/);
    // seq above uint32
    expect(() => decodeMessage(Uint8Array.from([2, 1, 0xff, 0xff, 0xff, 0xff, 0x7f]))).toThrow(/seq exceeds/);
    // empty from.id
    expect(() => decodeMessage(Uint8Array.from([2, 1, 7, 0]))).toThrow(/from.id must not be empty/);
    // invalid UTF-8 in from.id
    expect(() => decodeMessage(Uint8Array.from([2, 1, 7, 1, 0xff]))).toThrow(/from.id is not valid UTF-8/);
    // oversized from.id length
    expect(() => decodeMessage(Uint8Array.from([2, 1, 7, 0x81, 0x02]))).toThrow(/from.id length exceeds 256/);
  });

  it("checks an update count against the bytes present before allocating", () => {
    const ack = encodeMessage({ type: "ack", seq: 1, from: { id: "a", address: "a:1", incarnation: 0, ringStatus: "normal", ringVersion: 0 }, updates: [] });
    // Replace the final count (0) with 200 updates but supply no bytes for them.
    const claimed = Uint8Array.from([...ack.subarray(0, ack.length - 1), 200, 1]);
    expect(() => decodeMessage(claimed)).toThrow(/200 updates cannot fit/);
    // Piggyback is bounded even when the bytes would be there.
    const tooMany = Uint8Array.from([...ack.subarray(0, ack.length - 1), 0x81, 0x02]);
    expect(() => decodeMessage(tooMany)).toThrow(/update count exceeds 256/);
  });

  it("refuses to encode malformed messages", () => {
    expect(() => encodeMessage({ ...ping, seq: -1 })).toThrow(GossipEncodeError);
    expect(() => encodeMessage({ ...ping, from: { ...ping.from, id: "" } })).toThrow(/from.id must not be empty/);
    expect(() => encodeMessage({ ...ping, targetId: "x".repeat(300) })).toThrow(/targetId is longer than 256/);
    expect(() => encodeMessage({ ...ping, from: { ...ping.from, incarnation: 1.5 } })).toThrow(/incarnation/);
    expect(() => encodeMessage({ ...ping, from: { ...ping.from, address: "\ud800" } })).toThrow(/well-formed/);
    const badState = { ...ping, updates: [{ id: "c", address: "c:1", state: "zombie", incarnation: 1 }] };
    expect(() => encodeMessage(badState as unknown as GossipMessage)).toThrow(/updates\[0\].state/);
    const badRing = { ...ping, from: { ...ping.from, ringStatus: "gone" } };
    expect(() => encodeMessage(badRing as unknown as GossipMessage)).toThrow(/from.ringStatus is not a ring status/);
    expect(() => encodeMessage({ ...ping, from: { ...ping.from, ringVersion: -1 } })).toThrow(/from.ringVersion/);
  });

  it("keeps piggybacked messages small", () => {
    const eight = Array.from({ length: 8 }, (_, i) => ({
      id: `node-${i}`,
      address: `10.0.0.${i}:7946`,
      state: "alive" as const,
      incarnation: 12,
      ringStatus: "normal" as const,
      ringVersion: 3,
    }));
    const bytes = encodeMessage({ ...ping, updates: eight });
    expect(bytes.length).toBeLessThan(260);
  });
});
