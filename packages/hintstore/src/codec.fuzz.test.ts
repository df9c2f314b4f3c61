// Fuzzing of every decoder in codec.ts: whatever bytes (or id strings) they are given, they either return a
// value that encodes back to exactly the input, or throw the package's typed error for that input
// (HintStoreFormatError for stored bytes, HintStoreInputError for ids) - never a RangeError, TypeError or
// anything else that a caller would not expect from a damaged database or a bad argument.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeHintCreatedAt,
  decodeHintHeader,
  decodeHintKey,
  decodeHintValue,
  decodeSeqValue,
  encodeHintKey,
  encodeHintValue,
  encodeSeqValue,
  formatHintId,
  MAX_SEQ,
  parseHintId,
} from "./codec.js";
import { HintStoreFormatError, HintStoreInputError } from "./errors.js";

const RUNS = 2000;

type ErrorClass = typeof HintStoreFormatError | typeof HintStoreInputError;

/** The decoded value, or undefined if the decoder threw `expected` (anything else fails the test). */
function attempt<T>(decode: () => T, expected: ErrorClass): T | undefined {
  try {
    return decode();
  } catch (error) {
    if (!(error instanceof expected)) {
      throw new Error(`expected a value or ${expected.name}, got ${String(error)}`, { cause: error });
    }
    return undefined;
  }
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

/** Runs every byte decoder on `input` and checks the re-encoding of whatever they return. */
function checkByteDecoders(input: Buffer): void {
  const key = attempt(() => decodeHintKey(input), HintStoreFormatError);
  if (key !== undefined) {
    expect(hex(encodeHintKey(key.target, key.seq))).toBe(hex(input));
  }

  const seq = attempt(() => decodeSeqValue(input), HintStoreFormatError);
  if (seq !== undefined) {
    expect(seq).toBeLessThanOrEqual(MAX_SEQ);
    expect(hex(encodeSeqValue(seq))).toBe(hex(input));
  }

  const value = attempt(() => decodeHintValue(input), HintStoreFormatError);
  if (value !== undefined) {
    expect(hex(encodeHintValue(value.key, value.createdAt, value.record))).toBe(hex(input));
  }

  const header = attempt(() => decodeHintHeader(input), HintStoreFormatError);
  expect(header === undefined).toBe(value === undefined);
  if (header !== undefined) {
    expect(header).toEqual({ key: value!.key, createdAt: value!.createdAt, recordBytes: value!.record.length });
  }

  const createdAt = attempt(() => decodeHintCreatedAt(input), HintStoreFormatError);
  if (createdAt !== undefined) {
    // Only the header is read: its timestamp bytes must be exactly this number.
    expect(Number.isFinite(createdAt)).toBe(true);
    const encoded = Buffer.alloc(8);
    encoded.writeDoubleBE(createdAt);
    expect(hex(encoded)).toBe(hex(input.subarray(1, 9)));
  }
  if (value !== undefined) {
    expect(Object.is(createdAt, value.createdAt)).toBe(true);
  }
}

type Mutation =
  | { kind: "set"; at: number; value: number }
  | { kind: "word"; at: number; value: number }
  | { kind: "truncate"; at: number }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "delete"; at: number; count: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: fc.nat({ max: 255 }) }),
  // Length and version fields: the values most likely to break bounds arithmetic.
  fc.record({
    kind: fc.constant("word" as const),
    at: fc.nat(),
    value: fc.constantFrom(0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0xfffe, 0xffff, 0x10000, 0x7fffffff, 0xffffffff),
  }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
);

function mutate(original: Uint8Array, mutations: readonly Mutation[]): Buffer {
  let bytes = Buffer.from(original);
  for (const mutation of mutations) {
    const at = bytes.length === 0 ? 0 : mutation.at % bytes.length;
    switch (mutation.kind) {
      case "set":
        if (bytes.length > 0) bytes[at] = mutation.value;
        break;
      case "word": {
        const word = Buffer.alloc(4);
        word.writeUInt32BE(mutation.value);
        // Written with its low bytes last, so a u16 field at `at` gets the value's low half.
        word.copy(bytes, at, 0, Math.min(4, bytes.length - at));
        break;
      }
      case "truncate":
        bytes = bytes.subarray(0, at);
        break;
      case "insert":
        bytes = Buffer.concat([bytes.subarray(0, at), mutation.bytes, bytes.subarray(at)]);
        break;
      case "delete":
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + mutation.count)]);
        break;
    }
  }
  return bytes;
}

const targetArb = fc.oneof(fc.string({ minLength: 1, maxLength: 12, unit: "grapheme" }), fc.constantFrom("a", "a@b", "\u00e9", "\ud83d\ude00"));
const keyArb = fc.string({ minLength: 1, maxLength: 16, unit: "grapheme" });
const seqArb = fc.oneof(fc.integer({ min: 0, max: MAX_SEQ }), fc.constantFrom(0, 1, 0xffffffff, MAX_SEQ));
const createdAtArb = fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer({ min: 0, max: 2 ** 45 }));

/** Valid encodings of every kind, so mutations start from realistic bytes (and decoders see each other's). */
const validEncodingArb: fc.Arbitrary<Buffer> = fc.oneof(
  fc.tuple(targetArb, seqArb).map(([target, seq]) => encodeHintKey(target, seq)),
  fc.tuple(keyArb, createdAtArb, fc.uint8Array({ maxLength: 40 })).map(([key, createdAt, record]) => encodeHintValue(key, createdAt, record)),
  seqArb.map((seq) => encodeSeqValue(seq)),
);

describe("byte decoders under fuzzing", () => {
  it("return a value that re-encodes to the input, or throw HintStoreFormatError, for arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ minLength: 8, maxLength: 16 })), (bytes) => {
        checkByteDecoders(Buffer.from(bytes));
      }),
      { seed: 601, numRuns: RUNS },
    );
  });

  it("do the same for mutated valid encodings", () => {
    fc.assert(
      fc.property(validEncodingArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (valid, mutations) => {
        checkByteDecoders(mutate(valid, mutations));
      }),
      { seed: 602, numRuns: RUNS },
    );
  });

  it("decode valid encodings unchanged", () => {
    fc.assert(
      fc.property(validEncodingArb, (valid) => {
        checkByteDecoders(valid);
      }),
      { seed: 603, numRuns: 500 },
    );
  });

  it("accept any Uint8Array view, not only Buffers", () => {
    const value = encodeHintValue("k", 5, Uint8Array.of(1, 2, 3));
    const padded = new Uint8Array(value.length + 4);
    padded.set(value, 2);
    const view = padded.subarray(2, 2 + value.length);
    expect(decodeHintValue(view)).toEqual({ key: "k", createdAt: 5, record: Uint8Array.of(1, 2, 3) });
    expect(decodeHintCreatedAt(view)).toBe(5);
    expect(decodeHintKey(new Uint8Array(encodeHintKey("t", 9)))).toEqual({ target: "t", seq: 9 });
    expect(decodeSeqValue(new Uint8Array(encodeSeqValue(7)))).toBe(7);
  });

  it("reject what a lenient decoder would silently change: invalid UTF-8, an empty key, NaN, a sequence past 2^53", () => {
    const badUtf8Key = encodeHintKey("ab", 1);
    badUtf8Key[3] = 0xc3; // a lead byte followed by "b"
    expect(() => decodeHintKey(badUtf8Key)).toThrow(/not valid UTF-8/);
    const badUtf8Value = encodeHintValue("ab", 1, new Uint8Array(0));
    badUtf8Value[13] = 0xff;
    expect(() => decodeHintValue(badUtf8Value)).toThrow(HintStoreFormatError);
    expect(() => decodeHintValue(encodeHintValue("", 1, Uint8Array.of(1)))).toThrow(/empty key/);
    const nan = encodeHintValue("k", 1, new Uint8Array(0));
    nan.writeDoubleBE(Number.NaN, 1);
    expect(() => decodeHintCreatedAt(nan)).toThrow(/non-finite/);
    expect(() => decodeSeqValue(Buffer.alloc(8, 0xff))).toThrow(HintStoreFormatError);
    expect(() => decodeHintKey("not bytes" as unknown as Buffer)).toThrow(HintStoreFormatError);
  });
});

const anyCodeUnitString = fc.string({ maxLength: 40, unit: fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit)) });

function checkParseHintId(id: unknown): void {
  const parsed = attempt(() => parseHintId(id), HintStoreInputError);
  if (parsed !== undefined) {
    expect(formatHintId(parsed.seq, parsed.target)).toBe(id);
    expect(parsed.target.isWellFormed()).toBe(true);
  }
}

function mutateString(original: string, mutations: readonly { at: number; kind: "set" | "delete" | "insert"; text: string }[]): string {
  let id = original;
  for (const { at, kind, text } of mutations) {
    const i = id.length === 0 ? 0 : at % id.length;
    id = kind === "set" ? id.slice(0, i) + text + id.slice(i + 1) : kind === "delete" ? id.slice(0, i) + id.slice(i + 1) : id.slice(0, i) + text + id.slice(i);
  }
  return id;
}

describe("parseHintId under fuzzing", () => {
  it("returns an id that formats back to the input, or throws HintStoreInputError, for arbitrary strings and values", () => {
    fc.assert(
      fc.property(fc.oneof(anyCodeUnitString, fc.string({ unit: "binary" }), fc.anything({ maxDepth: 2 })), (id) => {
        checkParseHintId(id);
      }),
      { seed: 604, numRuns: RUNS },
    );
  });

  it("does the same for mutated valid ids", () => {
    const idMutationArb = fc.record({
      at: fc.nat(),
      kind: fc.constantFrom("set" as const, "delete" as const, "insert" as const),
      text: fc.oneof(fc.constantFrom("@", "0", "f", "F", "g", "-", "\ud800", "\udfff", "\u00e9", " ", ""), anyCodeUnitString),
    });
    fc.assert(
      fc.property(seqArb, targetArb, fc.array(idMutationArb, { minLength: 1, maxLength: 3 }), (seq, target, mutations) => {
        checkParseHintId(mutateString(formatHintId(seq, target), mutations));
      }),
      { seed: 605, numRuns: RUNS },
    );
  });

  it("refuses ids whose target no hint could have (lone surrogates, over 1024 bytes)", () => {
    expect(() => parseHintId(`${"0".repeat(16)}@\ud800`)).toThrow(HintStoreInputError);
    expect(() => parseHintId(`${"0".repeat(16)}@${"x".repeat(1025)}`)).toThrow(/at most 1024/);
    expect(() => parseHintId(`${"0".repeat(16)}@${"x".repeat(70_000)}`)).toThrow(HintStoreInputError);
  });
});
