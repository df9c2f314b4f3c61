import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeHintKey,
  decodeHintValue,
  encodeHintKey,
  encodeHintValue,
  formatHintId,
  MAX_SEQ,
  MAX_TARGET_BYTES,
  parseHintId,
  targetRange,
  validateKey,
  validateTarget,
} from "./codec.js";
import { HintStoreFormatError, HintStoreInputError } from "./errors.js";

const seqArb = fc.integer({ min: 0, max: MAX_SEQ });
const targetArb = fc.string({ minLength: 1, maxLength: 20, unit: "grapheme" });

describe("hint ids", () => {
  it("round-trip any sequence and target", () => {
    fc.assert(
      fc.property(seqArb, targetArb, (seq, target) => {
        expect(parseHintId(formatHintId(seq, target))).toEqual({ seq, target });
      }),
      { seed: 1, numRuns: 300 },
    );
  });

  it("sort as strings in sequence order", () => {
    fc.assert(
      fc.property(seqArb, seqArb, targetArb, (a, b, target) => {
        const idA = formatHintId(a, target);
        const idB = formatHintId(b, target);
        expect(idA < idB).toBe(a < b);
      }),
      { seed: 2, numRuns: 300 },
    );
  });

  it("rejects strings that are not hint ids", () => {
    for (const bad of ["", "abc", "000000000000000g@t", "0000000000000001", "0000000000000001@", "0000000000000001-t", "ffffffffffffffff@t"]) {
      expect(() => parseHintId(bad), bad).toThrow(HintStoreInputError);
    }
    expect(() => parseHintId(42)).toThrow(HintStoreInputError);
  });
});

describe("hint keys", () => {
  it("round-trip and stay inside their target's range only", () => {
    fc.assert(
      fc.property(seqArb, targetArb, targetArb, (seq, target, other) => {
        const key = encodeHintKey(target, seq);
        expect(decodeHintKey(key)).toEqual({ seq, target });
        const inRange = (t: string) => {
          const { gte, lte } = targetRange(t);
          return Buffer.compare(key, gte) >= 0 && Buffer.compare(key, lte) <= 0;
        };
        expect(inRange(target)).toBe(true);
        expect(inRange(other)).toBe(other === target);
      }),
      { seed: 3, numRuns: 300 },
    );
  });

  it("order by sequence within a target", () => {
    fc.assert(
      fc.property(seqArb, seqArb, targetArb, (a, b, target) => {
        expect(Math.sign(Buffer.compare(encodeHintKey(target, a), encodeHintKey(target, b)))).toBe(Math.sign(a - b));
      }),
      { seed: 4, numRuns: 200 },
    );
  });

  it("keep targets that are prefixes of one another apart", () => {
    const a = targetRange("a");
    const keyOfAb = encodeHintKey("a@b", 1);
    expect(Buffer.compare(keyOfAb, a.gte) >= 0 && Buffer.compare(keyOfAb, a.lte) <= 0).toBe(false);
  });

  it("reject malformed keys", () => {
    expect(() => decodeHintKey(Buffer.from([1, 0, 5, 97]))).toThrow(HintStoreFormatError);
    expect(() => decodeHintKey(Buffer.from([0, 0, 1, 97, 0, 0, 0, 0, 0, 0, 0, 1]))).toThrow(HintStoreFormatError);
  });
});

describe("hint values", () => {
  it("round-trip key, createdAt and record bytes", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, unit: "grapheme" }),
        fc.double({ noNaN: true, noDefaultInfinity: true }),
        fc.uint8Array({ maxLength: 200 }),
        (key, createdAt, record) => {
          const decoded = decodeHintValue(encodeHintValue(key, createdAt, record));
          expect(decoded.key).toBe(key);
          expect(Object.is(decoded.createdAt, createdAt)).toBe(true);
          expect(decoded.record).toEqual(record);
        },
      ),
      { seed: 5, numRuns: 300 },
    );
  });

  it("reject a value of another version or truncated", () => {
    const value = encodeHintValue("k", 1, new Uint8Array([1, 2, 3]));
    const otherVersion = Buffer.from(value);
    otherVersion[0] = 2;
    expect(() => decodeHintValue(otherVersion)).toThrow(/version 2/);
    expect(() => decodeHintValue(value.subarray(0, 5))).toThrow(HintStoreFormatError);
    const lyingLength = Buffer.from(value);
    lyingLength.writeUInt32BE(1000, 9);
    expect(() => decodeHintValue(lyingLength)).toThrow(HintStoreFormatError);
  });
});

describe("validation", () => {
  it("accepts ordinary targets and keys", () => {
    expect(() => validateTarget("10.0.0.1:7001")).not.toThrow();
    expect(() => validateKey("user/42 ☃")).not.toThrow();
  });

  it("rejects empty, non-string, lone-surrogate and oversized input", () => {
    expect(() => validateTarget("")).toThrow(HintStoreInputError);
    expect(() => validateTarget(undefined)).toThrow(HintStoreInputError);
    expect(() => validateTarget("x".repeat(MAX_TARGET_BYTES + 1))).toThrow(/at most 1024/);
    expect(() => validateTarget("\ud800")).toThrow(/lone surrogates/);
    expect(() => validateKey("")).toThrow(HintStoreInputError);
    expect(() => validateKey(7)).toThrow(HintStoreInputError);
    expect(() => validateKey("a\udc00")).toThrow(/lone surrogates/);
  });
});
