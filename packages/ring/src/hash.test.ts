import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RingError, hashKey, murmurHash3x86_32, vnodeToken } from "./index.js";

const utf8 = new TextEncoder();
const bytes = (...values: number[]) => Uint8Array.from(values);

// Published MurmurHash3_x86_32 vectors (smhasher / the widely cited vector list), each re-checked
// against a line-by-line transcription of Appleby's C reference.
const seededVectors: [Uint8Array, number, number][] = [
  [bytes(), 0, 0],
  [bytes(), 1, 0x514e28b7],
  [bytes(), 0xffffffff, 0x81f16f39],
  [bytes(0xff, 0xff, 0xff, 0xff), 0, 0x76293b50],
  [bytes(0x21, 0x43, 0x65, 0x87), 0, 0xf55b516b],
  [bytes(0x21, 0x43, 0x65, 0x87), 0x5082edee, 0x2362f9de],
  [bytes(0x21, 0x43, 0x65), 0, 0x7e4a8634],
  [bytes(0x21, 0x43), 0, 0xa0f7b07a],
  [bytes(0x21), 0, 0x72661cf4],
  [bytes(0, 0, 0, 0), 0, 0x2362f9de],
  [bytes(0, 0, 0), 0, 0x85f0b427],
  [bytes(0, 0), 0, 0x30f4c306],
  [bytes(0), 0, 0x514e28b7],
  [utf8.encode("Hello, world!"), 0x9747b28c, 0x24884cba],
  [utf8.encode("ππππππππ"), 0x9747b28c, 0xd58063c1],
  [utf8.encode("a"), 0x9747b28c, 0x7fa09ea6],
  [utf8.encode("aa"), 0x9747b28c, 0x5d211726],
  [utf8.encode("aaa"), 0x9747b28c, 0x283e0130],
  [utf8.encode("aaaa"), 0x9747b28c, 0x5a97808a],
  [utf8.encode("ab"), 0x9747b28c, 0x74875592],
  [utf8.encode("abc"), 0x9747b28c, 0xc84a62dd],
  [utf8.encode("abcd"), 0x9747b28c, 0xf0478627],
];

// Seed 0 over UTF-8: the ring's key hash.
const keyVectors: [string, number][] = [
  ["", 0],
  ["hello", 0x248bfa47],
  ["abc", 0xb3dd93fa],
  ["test", 0xba6bd213],
  ["Hello, world!", 0xc0363e43],
  ["The quick brown fox jumps over the lazy dog", 0x2e4ff723],
  ["ππππππππ", 0xec72b6e8],
  ["héllo wörld", 0x97f7f274],
  ["日本語", 0xa5a47297],
  ["😀", 0xbeb42efa],
  ["node-1#0", 0x4122ee3e],
];

describe("murmurHash3x86_32", () => {
  it.each(seededVectors)("matches the published vector %#", (data, seed, expected) => {
    expect(murmurHash3x86_32(data, seed)).toBe(expected);
  });

  it("rejects a seed that is not an unsigned 32-bit integer", () => {
    expect(() => murmurHash3x86_32(bytes(1), -1)).toThrow(RingError);
    expect(() => murmurHash3x86_32(bytes(1), 2 ** 32)).toThrow(RingError);
    expect(() => murmurHash3x86_32(bytes(1), 1.5)).toThrow(RingError);
  });
});

describe("hashKey", () => {
  it.each(keyVectors)("hashes %j to the seed-0 vector", (key, expected) => {
    expect(hashKey(key)).toBe(expected);
    expect(hashKey(utf8.encode(key))).toBe(expected);
  });

  it("hashes a lone surrogate as U+FFFD, exactly like TextEncoder", () => {
    expect(hashKey("a\ud800b")).toBe(hashKey("a\ufffdb"));
    expect(hashKey("a\ud800b")).toBe(0xcb694923);
  });

  it("hashes long non-ASCII strings (beyond the reused encode buffer) like their bytes", () => {
    const key = "ключ-".repeat(20_000);
    expect(hashKey(key)).toBe(murmurHash3x86_32(utf8.encode(key)));
  });

  it("gives a string and its UTF-8 bytes the same unsigned 32-bit hash", () => {
    const anyCodeUnit = fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit));
    const keys = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: "binary", maxLength: 40 }), fc.string({ unit: anyCodeUnit, maxLength: 40 }));
    fc.assert(
      fc.property(keys, (key) => {
        const hash = hashKey(key);
        expect(hash).toBe(hashKey(utf8.encode(key)));
        expect(Number.isInteger(hash) && hash >= 0 && hash < 2 ** 32).toBe(true);
      }),
      { numRuns: 500, seed: 42 },
    );
  });
});

describe("vnodeToken", () => {
  it("is the hash of `${node}#${index}`", () => {
    expect(vnodeToken("node-1", 0)).toBe(0x4122ee3e);
    expect(vnodeToken("b", 17)).toBe(hashKey("b#17"));
  });

  it("rejects a negative or fractional index", () => {
    expect(() => vnodeToken("a", -1)).toThrow(RingError);
    expect(() => vnodeToken("a", 0.5)).toThrow(RingError);
  });
});
