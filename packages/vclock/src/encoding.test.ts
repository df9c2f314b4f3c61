import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { VersionVector } from "./clock.js";
import {
  CONTEXT_FORMAT_V1,
  MAX_CLOCK_ENTRIES,
  SIBLING_SET_FORMAT_V1,
  SIBLING_SET_FORMAT_V2,
  decodeContext,
  decodeSiblingSet,
  encodeContext,
  encodeSiblingSet,
} from "./encoding.js";
import { InvalidContextError, InvalidEncodingError, InvalidVersionError } from "./errors.js";
import { emptySet, equalSets, sync, update } from "./siblings.js";
import type { SiblingSet } from "./siblings.js";
import { anySiblingSet } from "./test-support/arbitraries.js";
import { historyArbitrary, simulate } from "./test-support/histories.js";

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);
const params = { numRuns: 300, seed: 2024 };

/** A decoder's contract: either the bytes are a canonical encoding, or it throws the expected error. */
function decodesCanonicallyOrRejects(input: Uint8Array): void {
  let decoded: SiblingSet;
  try {
    decoded = decodeSiblingSet(input);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidEncodingError);
    return;
  }
  expect(encodeSiblingSet(decoded)).toEqual(input);
}

function contextDecodesCanonicallyOrRejects(input: Uint8Array): void {
  let decoded: VersionVector;
  try {
    decoded = decodeContext(input);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidContextError);
    return;
  }
  expect(encodeContext(decoded)).toEqual(input);
}

/** A valid encoding with one byte changed, a byte inserted or removed, or cut short: garbage that gets past the format byte. */
const corruptedEncoding = fc
  .tuple(anySiblingSet.map(encodeSiblingSet), fc.nat(), fc.nat({ max: 255 }), fc.constantFrom("flip", "insert", "delete", "truncate"))
  .map(([valid, at, byte, how]) => {
    const i = at % valid.length;
    const out = Array.from(valid);
    if (how === "flip") out[i] = byte;
    else if (how === "insert") out.splice(i, 0, byte);
    else if (how === "delete") out.splice(i, 1);
    else out.length = i;
    return Uint8Array.from(out);
  });

describe("encodeSiblingSet / decodeSiblingSet", () => {
  it("round-trips every set a history produces", () => {
    fc.assert(
      fc.property(historyArbitrary(30), (ops) => {
        for (const set of simulate(ops).history) {
          const encoded = encodeSiblingSet(set);
          const decoded = decodeSiblingSet(encoded);
          expect(equalSets(decoded, set)).toBe(true);
          expect(encodeSiblingSet(decoded)).toEqual(encoded);
        }
      }),
      { ...params, numRuns: 100 },
    );
  });

  it("round-trips arbitrary well-formed sets (unicode node ids, large counters and timestamps, empty values)", () => {
    fc.assert(
      fc.property(anySiblingSet, (set) => {
        const decoded = decodeSiblingSet(encodeSiblingSet(set));
        expect(equalSets(decoded, set)).toBe(true);
        expect(decoded.clock).toEqual(set.clock);
      }),
      params,
    );
  });

  it("encodes the empty set as format byte, zero clock entries, zero siblings", () => {
    expect(encodeSiblingSet(emptySet())).toEqual(bytes(SIBLING_SET_FORMAT_V1, 0, 0));
    expect(equalSets(decodeSiblingSet(bytes(1, 0, 0)), emptySet())).toBe(true);
  });

  it("has the documented layout", () => {
    let set = update(undefined, new Map(), "b", text("hi"), 300);
    set = update(set, new Map(), "a", null, 1);
    // clock: 2 entries, "a"=1, "b"=1; siblings: (index 0, 1, ts 1, tombstone), (index 1, 1, ts 300, "hi")
    expect(encodeSiblingSet(set)).toEqual(bytes(1, 2, 1, 0x61, 1, 1, 0x62, 1, 2, 0, 1, 1, 0, 1, 1, 0xac, 0x02, 3, 0x68, 0x69));
  });

  it("stores content types in format 0x02, leaving sets without them byte for byte in format 0x01", () => {
    const plain = update(undefined, new Map(), "b", text("hi"), 300);
    expect(encodeSiblingSet(plain)[0]).toBe(SIBLING_SET_FORMAT_V1);
    let set = update(undefined, new Map(), "b", text("hi"), 300, "text/plain");
    set = update(set, new Map(), "a", null, 1);
    // As format 0x01, then per sibling a content type tag: 0 for none, else length + 1 and the bytes.
    expect(encodeSiblingSet(set)).toEqual(bytes(2, 2, 1, 0x61, 1, 1, 0x62, 1, 2, 0, 1, 1, 0, 0, 1, 1, 0xac, 0x02, 3, 0x68, 0x69, 11, ...text("text/plain")));
    const decoded = decodeSiblingSet(encodeSiblingSet(set));
    expect(decoded.siblings.map((s) => s.contentType)).toEqual([undefined, "text/plain"]);
    expect("contentType" in decoded.siblings[0]!).toBe(false);
    expect(equalSets(decoded, set)).toBe(true);
    // A set whose content types all went (the typed value was superseded) is format 0x01 again.
    expect(encodeSiblingSet(update(set, set.clock, "a", text("x"), 2))[0]).toBe(SIBLING_SET_FORMAT_V1);
  });

  it("refuses content types a set may not carry", () => {
    const base = update(undefined, new Map(), "a", text("v"), 1);
    const withType = (contentType: string, value: Uint8Array | null = text("v")): SiblingSet => ({
      clock: base.clock,
      siblings: [{ ...base.siblings[0]!, value, contentType }],
    });
    for (const set of [withType(""), withType("t\u00e9xt"), withType("a\nb"), withType("x".repeat(256)), withType("text/plain", null)]) {
      expect(() => encodeSiblingSet(set)).toThrow(InvalidVersionError);
    }
    expect(() => update(undefined, new Map(), "a", null, 1, "text/plain")).toThrow(InvalidVersionError);
    expect(() => update(undefined, new Map(), "a", text("v"), 1, "")).toThrow(InvalidVersionError);
    expect(encodeSiblingSet(withType("x".repeat(255)))[0]).toBe(SIBLING_SET_FORMAT_V2);
  });

  it("is canonical: the same set built in different orders encodes to the same bytes", () => {
    const x = update(undefined, new Map(), "x", text("1"), 1);
    const y = update(undefined, new Map(), "y", text("2"), 2);
    const z = update(undefined, new Map(), "z", null, 3);
    const one = sync(sync(x, y), z);
    const other = sync(z, sync(y, x));
    const reordered: SiblingSet = { clock: new Map([...one.clock].reverse()), siblings: one.siblings };
    expect(encodeSiblingSet(other)).toEqual(encodeSiblingSet(one));
    expect(encodeSiblingSet(reordered)).toEqual(encodeSiblingSet(one));
  });

  it("encodes a clock in any insertion order like its sorted form, small (sorted in place) and large (Array#sort)", () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.string({ unit: "grapheme", minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 40 }), fc.nat(), (ids, seed) => {
        const entries = ids.map((id, i) => [id, i + 1] as const);
        const shuffled = [...entries].sort((a, b) => ((a[1] * 7919 + seed) % 101) - ((b[1] * 7919 + seed) % 101));
        const sorted = [...entries].sort((a, b) => (a[0] < b[0] ? -1 : 1));
        const sibling = { dot: { node: sorted[0]![0], counter: 1 }, value: text("v"), timestamp: 5 };
        const expected = encodeSiblingSet({ clock: new Map(sorted), siblings: [sibling] });
        expect(encodeSiblingSet({ clock: new Map(shuffled), siblings: [sibling] })).toEqual(expected);
        expect(encodeContext(new Map(shuffled))).toEqual(encodeContext(new Map(sorted)));
      }),
      params,
    );
  });

  it("hands out encodings that do not share bytes, however many are kept", () => {
    // Small encodings are views into a shared slab: each must keep its own bytes.
    const sets = fc.sample(anySiblingSet, { numRuns: 3000, seed: 7 });
    const encoded = sets.map((set) => encodeSiblingSet(set));
    const copies = encoded.map((bytes) => Uint8Array.from(bytes));
    for (const set of sets) encodeSiblingSet(set); // more encodings after them change none of them
    encoded.forEach((bytes, i) => {
      expect(bytes).toEqual(copies[i]);
      expect(equalSets(decodeSiblingSet(bytes), sets[i]!)).toBe(true);
    });
  });

  it("decodes the right node id among many that share a slot of the id cache", () => {
    // 2,000 distinct ids, ASCII and not, go through the 256 slots of the cache; each decodes to itself, twice.
    const ids = Array.from({ length: 2000 }, (_, i) => (i % 3 === 0 ? `node-é-${i}` : `127.0.0.${i % 250}:${7000 + i}`));
    for (let round = 0; round < 2; round++) {
      for (const id of ids) {
        const set = update(undefined, new Map(), id, text("v"), 1);
        expect([...decodeSiblingSet(encodeSiblingSet(set)).clock.keys()]).toEqual([id]);
      }
    }
  });

  it("decodes values as views of the input, without copying", () => {
    const encoded = encodeSiblingSet(update(undefined, new Map(), "a", text("value"), 1));
    const value = decodeSiblingSet(encoded).siblings[0]?.value;
    expect(value?.buffer).toBe(encoded.buffer);
  });

  it("keeps a leading byte order mark in a node id", () => {
    const set = update(undefined, new Map(), "\uFEFFnode", text("v"), 1);
    expect([...decodeSiblingSet(encodeSiblingSet(set)).clock.keys()]).toEqual(["\uFEFFnode"]);
  });

  it("rejects sets that break their invariants", () => {
    const dot = { node: "a", counter: 2 };
    const notCovered: SiblingSet = { clock: new Map([["a", 1]]), siblings: [{ dot, value: null, timestamp: 0 }] };
    const unsorted: SiblingSet = {
      clock: new Map([["a", 3]]),
      siblings: [
        { dot: { node: "a", counter: 2 }, value: null, timestamp: 0 },
        { dot: { node: "a", counter: 1 }, value: null, timestamp: 0 },
      ],
    };
    const zeroCounter: SiblingSet = { clock: new Map([["a", 0]]), siblings: [] };
    const badTimestamp: SiblingSet = { clock: new Map([["a", 1]]), siblings: [{ dot: { node: "a", counter: 1 }, value: null, timestamp: -5 }] };
    const loneSurrogate: SiblingSet = { clock: new Map([["\uD800", 1]]), siblings: [] };
    const longId: SiblingSet = { clock: new Map([["n".repeat(256), 1]]), siblings: [] };
    for (const set of [notCovered, unsorted, zeroCounter, badTimestamp, loneSurrogate, longId]) {
      expect(() => encodeSiblingSet(set)).toThrow(InvalidVersionError);
    }
  });

  it.each([
    ["no bytes", bytes()],
    ["unknown format", bytes(3, 0, 0)],
    ["format 0x02 without any content type", bytes(SIBLING_SET_FORMAT_V2, 0, 0)],
    ["format 0x02 whose one sibling has no content type", bytes(2, 1, 1, 0x61, 1, 1, 0, 1, 0, 2, 0x76, 0)],
    ["an empty content type", bytes(2, 1, 1, 0x61, 1, 1, 0, 1, 0, 2, 0x76, 1)],
    ["a tombstone with a content type", bytes(2, 1, 1, 0x61, 1, 1, 0, 1, 0, 0, 2, 0x74)],
    ["a content type that is not printable ASCII", bytes(2, 1, 1, 0x61, 1, 1, 0, 1, 0, 2, 0x76, 2, 0x0a)],
    ["a content type over 255 bytes", bytes(2, 1, 1, 0x61, 1, 1, 0, 1, 0, 2, 0x76, 0x81, 0x02, ...new Array<number>(256).fill(0x74))],
    ["a truncated content type", bytes(2, 1, 1, 0x61, 1, 1, 0, 1, 0, 2, 0x76, 3, 0x74)],
    ["a context instead of a set", bytes(CONTEXT_FORMAT_V1, 1, 1, 0x61, 1)],
    ["trailing bytes", bytes(1, 0, 0, 0)],
    ["truncated clock entry", bytes(1, 1, 1, 0x61)],
    ["clock counter 0", bytes(1, 1, 1, 0x61, 0, 0)],
    ["empty node id", bytes(1, 1, 0, 1, 0)],
    ["unsorted clock", bytes(1, 2, 1, 0x62, 1, 1, 0x61, 1, 0)],
    ["duplicate clock entry", bytes(1, 2, 1, 0x61, 1, 1, 0x61, 1, 0)],
    ["overlong varint", bytes(1, 1, 1, 0x61, 0x81, 0x00, 0)],
    ["counter above 2^53 - 1", bytes(1, 1, 1, 0x61, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10, 0)],
    ["varint longer than 8 bytes", bytes(1, 1, 1, 0x61, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x01, 0)],
    ["invalid UTF-8 node id", bytes(1, 1, 2, 0xc3, 0x28, 1, 0)],
    ["sibling node index out of range", bytes(1, 1, 1, 0x61, 1, 1, 1, 1, 0, 0)],
    ["sibling dot not covered by the clock", bytes(1, 1, 1, 0x61, 1, 1, 0, 2, 0, 0)],
    ["sibling counter 0", bytes(1, 1, 1, 0x61, 1, 1, 0, 0, 0, 0)],
    ["repeated sibling dot", bytes(1, 1, 1, 0x61, 2, 2, 0, 1, 0, 0, 0, 1, 0, 0)],
    ["unsorted siblings", bytes(1, 1, 1, 0x61, 2, 2, 0, 2, 0, 0, 0, 1, 0, 0)],
    ["value longer than the input", bytes(1, 1, 1, 0x61, 1, 1, 0, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f)],
    ["forged huge sibling count", bytes(1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f)],
    ["forged huge clock entry count", bytes(1, 0xff, 0xff, 0xff, 0xff, 0x0f)],
  ])("rejects %s", (_name, input) => {
    expect(() => decodeSiblingSet(input)).toThrow(InvalidEncodingError);
  });

  it("rejects every truncation of a valid encoding", () => {
    fc.assert(
      fc.property(anySiblingSet, (set) => {
        const encoded = encodeSiblingSet(set);
        for (let length = 0; length < encoded.length; length++) {
          expect(() => decodeSiblingSet(encoded.subarray(0, length))).toThrow(InvalidEncodingError);
        }
      }),
      { ...params, numRuns: 100 },
    );
  });

  it("either decodes random bytes to a set that re-encodes to the same bytes, or throws InvalidEncodingError", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), decodesCanonicallyOrRejects), { ...params, numRuns: 1000 });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (tail) => decodesCanonicallyOrRejects(Uint8Array.from([SIBLING_SET_FORMAT_V1, ...tail]))),
      { ...params, numRuns: 1000 },
    );
    fc.assert(fc.property(corruptedEncoding, decodesCanonicallyOrRejects), { ...params, numRuns: 1000 });
  });
});

describe("encodeContext / decodeContext", () => {
  it("round-trips clocks, with the empty clock as empty bytes", () => {
    expect(encodeContext(new Map())).toEqual(bytes());
    expect(decodeContext(bytes())).toEqual(new Map());
    fc.assert(
      fc.property(anySiblingSet, ({ clock }) => {
        expect(decodeContext(encodeContext(clock))).toEqual(clock);
      }),
      params,
    );
  });

  it("is canonical regardless of insertion order", () => {
    const a = new Map([
      ["n2", 3],
      ["n1", 7],
    ]);
    const b = new Map([
      ["n1", 7],
      ["n2", 3],
    ]);
    expect(encodeContext(a)).toEqual(encodeContext(b));
    expect(encodeContext(a)).toEqual(bytes(CONTEXT_FORMAT_V1, 2, 2, 0x6e, 0x31, 7, 2, 0x6e, 0x32, 3));
  });

  it.each([
    ["a sibling set", bytes(1, 0, 0)],
    ["a header with no entries", bytes(CONTEXT_FORMAT_V1, 0)],
    ["truncation", bytes(CONTEXT_FORMAT_V1, 1, 1)],
    ["trailing bytes", bytes(CONTEXT_FORMAT_V1, 1, 1, 0x61, 1, 9)],
    ["counter 0", bytes(CONTEXT_FORMAT_V1, 1, 1, 0x61, 0)],
    ["an id longer than 255 bytes", bytes(CONTEXT_FORMAT_V1, 1, 0x80, 0x02, ...new Array<number>(256).fill(0x61), 1)],
    ["too many entries", bytes(CONTEXT_FORMAT_V1, ...[0x81, 0x20] /* 4097 */)],
  ])("rejects %s with InvalidContextError", (_name, input) => {
    expect(() => decodeContext(input)).toThrow(InvalidContextError);
  });

  it("accepts a clock of MAX_CLOCK_ENTRIES entries and no more", () => {
    const clock = new Map(Array.from({ length: MAX_CLOCK_ENTRIES }, (_, i) => [`n${i}`, i + 1] as const));
    expect(decodeContext(encodeContext(clock)).size).toBe(MAX_CLOCK_ENTRIES);
    expect(() => encodeContext(new Map([...clock, ["one-more", 1]]))).toThrow(InvalidVersionError);
  });

  it("either decodes random bytes canonically or throws InvalidContextError", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 48 }), contextDecodesCanonicallyOrRejects), { ...params, numRuns: 1000 });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 48 }), (tail) => contextDecodesCanonicallyOrRejects(Uint8Array.from([CONTEXT_FORMAT_V1, ...tail]))),
      { ...params, numRuns: 1000 },
    );
  });
});
