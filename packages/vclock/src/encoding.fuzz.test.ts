// Mutation fuzzing of the two decoders that read untrusted bytes: decodeSiblingSet (records sent by
// other nodes, read from disk) and decodeContext (contexts sent by clients). Inputs are valid
// encodings damaged the way a hostile or broken peer would: bit flips, byte changes, truncations,
// insertions, deletions, duplicated slices, splices of two valid encodings, and every varint field
// (counts, lengths, indexes, counters, timestamps, content type lengths) replaced by huge, boundary
// or overlong values. Both set formats are fuzzed: 0x01 (no content types) and 0x02 (with them).
//
// The contract, for every input: either the decoder returns a value that re-encodes to exactly the
// input bytes (both formats are canonical), or it throws this package's typed error
// (InvalidEncodingError for sets, InvalidContextError for contexts). Never a RangeError, TypeError
// or other error; a forged count must not drive a loop or allocation (a hang fails by the test timeout).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { VersionVector } from "./clock.js";
import {
  CONTEXT_FORMAT_V1,
  MAX_CLOCK_ENTRIES,
  MAX_NODE_ID_BYTES,
  SIBLING_SET_FORMAT_V1,
  SIBLING_SET_FORMAT_V2,
  decodeContext,
  decodeSiblingSet,
  encodeContext,
  encodeSiblingSet,
} from "./encoding.js";
import { InvalidContextError, InvalidEncodingError } from "./errors.js";
import type { SiblingSet } from "./siblings.js";
import { anySiblingSet } from "./test-support/arbitraries.js";

/** Fixed seeds: a failure reproduces with the same seed (fast-check prints the path as well). */
const SEED = 0x7c10c4;
/** A decode of these inputs (at most a few KiB) takes microseconds; this only catches loops and big allocations. */

type Outcome = "accepted" | "rejected";

interface Tally {
  accepted: number;
  /** Accepted inputs of format 0x02 (with content types). */
  typedAccepted: number;
  rejected: number;
  slowestMs: number;
}

const newTally = (): Tally => ({ accepted: 0, typedAccepted: 0, rejected: 0, slowestMs: 0 });

function timed<T>(tally: Tally, run: () => T): T {
  const started = performance.now();
  try {
    return run();
  } finally {
    const took = performance.now() - started;
    // Reported, never asserted on: a loaded machine must not fail the test (a hang still does).
    tally.slowestMs = Math.max(tally.slowestMs, took);
  }
}

const hex = (bytes: Uint8Array): string => {
  const all = Buffer.from(bytes).toString("hex");
  return all.length > 200 ? `${all.slice(0, 200)}... (${bytes.length} bytes)` : all;
};

/** A short failure message (a toEqual diff of two large arrays makes fast-check's shrinking crawl). */
function sameBytes(reencoded: Uint8Array, input: Uint8Array): void {
  if (!Buffer.from(reencoded).equals(input)) throw new Error(`accepted ${hex(input)} but it re-encodes to ${hex(reencoded)}`);
}

/** decodeSiblingSet's contract: a canonical encoding decodes to a set that re-encodes to the same bytes; anything else throws InvalidEncodingError. */
function setContract(input: Uint8Array, tally: Tally): Outcome {
  let decoded: SiblingSet;
  try {
    decoded = timed(tally, () => decodeSiblingSet(input));
  } catch (error) {
    // Exactly the package's encoding error (InvalidContextError is for contexts).
    expect(error).toBeInstanceOf(InvalidEncodingError);
    expect((error as Error).constructor).toBe(InvalidEncodingError);
    tally.rejected++;
    return "rejected";
  }
  sameBytes(encodeSiblingSet(decoded), input);
  tally.accepted++;
  if (input[0] === SIBLING_SET_FORMAT_V2) tally.typedAccepted++;
  return "accepted";
}

/** decodeContext's contract: canonical context bytes (or none) decode to a clock that re-encodes to them; anything else throws InvalidContextError. */
function contextContract(input: Uint8Array, tally: Tally): Outcome {
  let decoded: VersionVector;
  try {
    decoded = timed(tally, () => decodeContext(input));
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidContextError);
    tally.rejected++;
    return "rejected";
  }
  sameBytes(encodeContext(decoded), input);
  tally.accepted++;
  return "accepted";
}

// --- varint fields of a valid encoding ---------------------------------------------------------

interface Field {
  readonly start: number;
  readonly end: number;
  readonly role: string;
}

/** Walks a VALID encoding (the test's own output) and lists where each varint field is. */
class FieldScanner {
  pos = 0;
  readonly fields: Field[] = [];
  constructor(private readonly bytes: Uint8Array) {}

  varint(role: string): number {
    const start = this.pos;
    let value = 0;
    let scale = 1;
    for (;;) {
      const b = this.bytes[this.pos++]!;
      value += (b & 0x7f) * scale;
      scale *= 0x80;
      if ((b & 0x80) === 0) break;
    }
    this.fields.push({ start, end: this.pos, role });
    return value;
  }

  clock(): number {
    const count = this.varint("clock entry count");
    for (let k = 0; k < count; k++) {
      const length = this.varint("node id length");
      this.pos += length;
      this.varint("clock counter");
    }
    return count;
  }
}

function siblingSetFields(encoded: Uint8Array): Field[] {
  const scan = new FieldScanner(encoded);
  const typed = encoded[0] === SIBLING_SET_FORMAT_V2;
  scan.pos = 1;
  scan.clock();
  const count = scan.varint("sibling count");
  for (let k = 0; k < count; k++) {
    scan.varint("sibling node index");
    scan.varint("sibling counter");
    scan.varint("sibling timestamp");
    const tag = scan.varint("sibling value length");
    if (tag > 0) scan.pos = scan.pos + tag - 1;
    if (typed) {
      const typeTag = scan.varint("sibling content type length");
      if (typeTag > 0) scan.pos = scan.pos + typeTag - 1;
    }
  }
  expect(scan.pos).toBe(encoded.length);
  return scan.fields;
}

function contextFields(encoded: Uint8Array): Field[] {
  if (encoded.length === 0) return [];
  const scan = new FieldScanner(encoded);
  scan.pos = 1;
  scan.clock();
  expect(scan.pos).toBe(encoded.length);
  return scan.fields;
}

/** `encoded` with one field's bytes replaced. */
function replaceField(encoded: Uint8Array, field: Field, bytes: readonly number[]): Uint8Array {
  return new Uint8Array(Buffer.concat([encoded.subarray(0, field.start), Uint8Array.from(bytes), encoded.subarray(field.end)]));
}

/** Canonical unsigned LEB128 of any non-negative integer, including values past 2^53 and 2^64. */
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

/** The same value with `extra` redundant continuation bytes (non-canonical, overlong). */
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
    255n,
    256n,
    BigInt(MAX_NODE_ID_BYTES),
    BigInt(MAX_NODE_ID_BYTES + 1),
    BigInt(MAX_CLOCK_ENTRIES),
    BigInt(MAX_CLOCK_ENTRIES + 1),
    2n ** 31n - 1n,
    2n ** 31n,
    2n ** 32n - 1n,
    2n ** 32n,
    2n ** 53n - 1n,
    2n ** 53n,
    2n ** 56n,
    2n ** 63n,
    2n ** 64n - 1n,
    2n ** 64n,
    2n ** 70n,
  ),
  fc.bigInt({ min: 0n, max: 2n ** 72n }),
);

/** A replacement for a varint field: canonical huge/boundary values, overlong encodings, or a varint that never ends. */
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
    byte: fc.oneof(fc.constantFrom(0x00, 0x01, 0x02, 0x7f, 0x80, 0xc1, 0xff), fc.nat({ max: 255 })),
  }),
  fc.record({ kind: fc.constant("truncate" as const), at: position }),
  fc.record({ kind: fc.constant("extend" as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant("insert" as const), at: position, bytes: fc.uint8Array({ minLength: 1, maxLength: 9 }) }),
  fc.record({ kind: fc.constant("delete" as const), at: position, length: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant("duplicate" as const), at: position, length: fc.integer({ min: 1, max: 24 }) }),
  fc.record({ kind: fc.constant("splice" as const), at: position, from: position }),
  fc.record({ kind: fc.constant("field" as const), which: position, bytes: fieldReplacement }),
);

/** Applies `mutations` in order to `valid`; `other` is the second valid encoding a splice takes its tail from. */
function mutate(valid: Uint8Array, other: Uint8Array, mutations: readonly Mutation[], fieldsOf: (encoded: Uint8Array) => Field[]): Uint8Array {
  // Field positions refer to the valid encoding: a field mutation applies first, the byte-level ones after it.
  let out = Array.from(valid);
  const fields = fieldsOf(valid);
  for (const m of mutations.filter((x) => x.kind === "field")) {
    if (m.kind !== "field" || fields.length === 0) continue;
    const field = fields[m.which % fields.length]!;
    const shift = out.length - valid.length;
    out.splice(field.start + shift, field.end - field.start, ...m.bytes);
  }
  for (const m of mutations) {
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

const encodedSet = anySiblingSet.map(encodeSiblingSet);
const encodedContext = anySiblingSet.map((set) => encodeContext(set.clock));
const mutations = fc.array(mutation, { minLength: 1, maxLength: 4 });

describe("decodeSiblingSet under mutation", () => {
  it("decodes mutated valid encodings canonically or throws InvalidEncodingError", () => {
    const tally = newTally();
    fc.assert(
      fc.property(encodedSet, encodedSet, mutations, (valid, other, ms) => {
        setContract(mutate(valid, other, ms, siblingSetFields), tally);
      }),
      { seed: SEED, numRuns: 4000 },
    );
    // Not vacuous: some mutations leave a valid set (a flipped value byte), most do not.
    expect(tally.accepted).toBeGreaterThan(0);
    expect(tally.typedAccepted).toBeGreaterThan(0);
    expect(tally.rejected).toBeGreaterThan(tally.accepted);
  });

  it("survives every varint field (counts, lengths, indexes, counters, timestamps) set huge, to a boundary, overlong or unterminated", () => {
    const tally = newTally();
    const roles = new Map<string, Tally>();
    fc.assert(
      fc.property(encodedSet, fc.nat(), fieldReplacement, (valid, which, replacement) => {
        const fields = siblingSetFields(valid);
        const field = fields[which % fields.length]!;
        const input = replaceField(valid, field, replacement);
        const perRole = roles.get(field.role) ?? newTally();
        roles.set(field.role, perRole);
        const outcome = setContract(input, tally);
        perRole[outcome]++;
      }),
      { seed: SEED + 1, numRuns: 4000 },
    );
    // Every kind of field was hit.
    expect([...roles.keys()].sort()).toEqual(
      [
        "clock counter",
        "clock entry count",
        "node id length",
        "sibling content type length",
        "sibling count",
        "sibling counter",
        "sibling node index",
        "sibling timestamp",
        "sibling value length",
      ].sort(),
    );
  });

  it("rejects every single forged length or count in a large valid encoding quickly, before allocating", () => {
    // One set with many entries and a large value: forged counts claim far more than the input holds.
    const clock = new Map(Array.from({ length: 200 }, (_, i) => [`node-${String(i).padStart(3, "0")}`, 1_000 + i] as const));
    const set: SiblingSet = {
      clock,
      siblings: [...clock.keys()].slice(0, 50).map((node, i) => ({
        dot: { node, counter: 1_000 + i },
        value: new Uint8Array(i === 0 ? 64 * 1024 : 10).fill(7),
        timestamp: 1_700_000_000_000,
        ...(i % 2 === 0 ? { contentType: "t".repeat(1 + (i % 200)) } : {}),
      })),
    };
    const valid = encodeSiblingSet(set);
    const tally = newTally();
    for (const field of siblingSetFields(valid)) {
      if (!["clock entry count", "node id length", "sibling count", "sibling value length", "sibling content type length"].includes(field.role)) continue;
      for (const huge of [2n ** 32n, 2n ** 53n - 1n, 2n ** 64n]) {
        const input = replaceField(valid, field, leb128(huge));
        expect([field.role, field.start, huge, setContract(input, tally)]).toEqual([field.role, field.start, huge, "rejected"]);
      }
    }
    expect(tally.rejected).toBeGreaterThan(600);
  });

  it("decodes a set given the other format's byte canonically or rejects it (never two encodings of one set)", () => {
    const tally = newTally();
    fc.assert(
      fc.property(encodedSet, encodedSet, mutations, (valid, other, ms) => {
        const relabelled = Uint8Array.from([valid[0] === SIBLING_SET_FORMAT_V1 ? SIBLING_SET_FORMAT_V2 : SIBLING_SET_FORMAT_V1, ...valid.subarray(1)]);
        setContract(relabelled, tally);
        setContract(
          mutate(relabelled, other, ms, () => []),
          tally,
        );
      }),
      { seed: SEED + 8, numRuns: 2000 },
    );
    expect(tally.rejected).toBeGreaterThan(tally.accepted);
  });

  it("rejects random bytes behind the format byte and context bytes given as a record", () => {
    const tally = newTally();
    fc.assert(
      fc.property(fc.constantFrom(SIBLING_SET_FORMAT_V1, SIBLING_SET_FORMAT_V2), fc.uint8Array({ maxLength: 256 }), (format, tail) => {
        setContract(Uint8Array.from([format, ...tail]), tally);
      }),
      { seed: SEED + 2, numRuns: 4000 },
    );
    fc.assert(
      fc.property(encodedContext, encodedSet, mutations, (context, other, ms) => {
        setContract(context, tally);
        // A context with its format byte made a set's: only an exact set encoding may decode.
        if (context.length > 0)
          setContract(
            mutate(Uint8Array.from([SIBLING_SET_FORMAT_V1, ...context.subarray(1)]), other, ms, () => []),
            tally,
          );
      }),
      { seed: SEED + 3, numRuns: 1000 },
    );
  });
});

describe("decodeContext under mutation", () => {
  it("decodes mutated valid contexts canonically or throws InvalidContextError", () => {
    const tally = newTally();
    fc.assert(
      fc.property(encodedContext, encodedContext, mutations, (valid, other, ms) => {
        contextContract(mutate(valid, other, ms, contextFields), tally);
      }),
      { seed: SEED + 4, numRuns: 4000 },
    );
    expect(tally.accepted).toBeGreaterThan(0);
    expect(tally.rejected).toBeGreaterThan(0);
  });

  it("survives every varint field of a context set huge, to a boundary, overlong or unterminated", () => {
    const tally = newTally();
    fc.assert(
      fc.property(
        encodedContext.filter((c) => c.length > 0),
        fc.nat(),
        fieldReplacement,
        (valid, which, replacement) => {
          const fields = contextFields(valid);
          const field = fields[which % fields.length]!;
          contextContract(replaceField(valid, field, replacement), tally);
        },
      ),
      { seed: SEED + 5, numRuns: 3000 },
    );
    expect(tally.rejected).toBeGreaterThan(0);
  });

  it("rejects a sibling set given as a context, mutated or not, and random bytes behind the format byte", () => {
    const tally = newTally();
    fc.assert(
      fc.property(encodedSet, encodedContext, mutations, (set, other, ms) => {
        contextContract(set, tally);
        contextContract(
          mutate(Uint8Array.from([CONTEXT_FORMAT_V1, ...set.subarray(1)]), other, ms, () => []),
          tally,
        );
      }),
      { seed: SEED + 6, numRuns: 1000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (tail) => {
        contextContract(Uint8Array.from([CONTEXT_FORMAT_V1, ...tail]), tally);
      }),
      { seed: SEED + 7, numRuns: 2000 },
    );
  });

  it("rejects a context of many entries whose entry count is forged, without looping on the count", () => {
    const clock = new Map(Array.from({ length: MAX_CLOCK_ENTRIES }, (_, i) => [`n${i}`, i + 1] as const));
    const valid = encodeContext(clock);
    const tally = newTally();
    const [count] = contextFields(valid);
    for (const forged of [BigInt(MAX_CLOCK_ENTRIES - 1), BigInt(MAX_CLOCK_ENTRIES + 1), 2n ** 32n, 2n ** 53n - 1n, 2n ** 64n]) {
      const input = replaceField(valid, count!, leb128(forged));
      expect(contextContract(input, tally)).toBe("rejected");
    }
  });
});
