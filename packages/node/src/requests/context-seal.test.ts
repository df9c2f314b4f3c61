import { createHmac, hkdfSync } from "node:crypto";
import { decodeClientContext, encodeClientContext, InvalidContextError } from "@dynamo-ts/vclock";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ContextSealer, SEALED_CONTEXT_FORMAT } from "./context-seal.js";

const sealer = new ContextSealer("a-cluster-secret-of-some-length");
const payload = encodeClientContext({
  clock: new Map([
    ["n1", 3],
    ["n2", 1],
  ]),
  dots: [{ node: "n3", counter: 7 }],
});

describe("sealed client contexts", () => {
  it("opens what it sealed for the same key, and keeps the empty context empty", () => {
    const sealed = sealer.seal("k", payload);
    expect(sealed[0]).toBe(SEALED_CONTEXT_FORMAT);
    expect(sealer.open("k", sealed)).toEqual(payload);
    expect(sealer.seal("k", new Uint8Array()).byteLength).toBe(0);
    expect(sealer.open("k", new Uint8Array()).byteLength).toBe(0);
  });

  it("refuses an unsealed context, another key's, another cluster's and a truncated one", () => {
    const sealed = sealer.seal("k", payload);
    expect(() => sealer.open("k", payload)).toThrow(/not issued by this cluster \(unsealed/);
    expect(() => sealer.open("other", sealed)).toThrow(/not issued by this cluster for this key/);
    expect(() => new ContextSealer("another-cluster-secret-xyz").open("k", sealed)).toThrow(InvalidContextError);
    expect(() => sealer.open("k", sealed.subarray(0, 10))).toThrow(InvalidContextError);
  });

  it("tags with HMAC-SHA256 exactly as createHmac does: contexts sealed before still open (property)", () => {
    const secret = "a-cluster-secret-of-some-length";
    const macKey = Buffer.from(hkdfSync("sha256", secret, "dynamo-ts", "client context v1", 32));
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 300 }), fc.uint8Array({ minLength: 1, maxLength: 500 }), (key, bytes) => {
        const keyBytes = Buffer.from(key, "utf8");
        const length = Buffer.alloc(4);
        length.writeUInt32BE(keyBytes.byteLength);
        const expected = createHmac("sha256", macKey)
          .update(Buffer.concat([length, keyBytes, bytes]))
          .digest()
          .subarray(0, 16);
        const sealed = new ContextSealer(secret).seal(key, bytes);
        expect(Buffer.from(sealed.subarray(sealed.byteLength - 16))).toEqual(expected);
        expect(sealer.open(key, sealed)).toEqual(bytes);
      }),
      { seed: 5, numRuns: 300 },
    );
  });

  it("binds the key exactly: keys that concatenate alike still differ", () => {
    // The key's length is part of the MAC input, so ("ab", payload) cannot pass for ("a", "b" + payload).
    const sealed = sealer.seal("ab", payload);
    expect(() => sealer.open("a", sealed)).toThrow(InvalidContextError);
  });

  it("refuses every single-byte change (property)", () => {
    const sealed = sealer.seal("key", payload);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: sealed.byteLength - 1 }), fc.integer({ min: 1, max: 255 }), (index, flip) => {
        const tampered = Uint8Array.from(sealed);
        tampered[index]! ^= flip;
        expect(() => sealer.open("key", tampered)).toThrow(InvalidContextError);
      }),
      { seed: 11, numRuns: 300 },
    );
  });

  it("answers arbitrary bytes with InvalidContextError or a context it really issued (fuzz)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.string({ maxLength: 20 }), (bytes, key) => {
        try {
          const opened = sealer.open(key, bytes);
          // Only the empty context opens without a seal this sealer made.
          expect(opened.byteLength).toBe(0);
          decodeClientContext(opened);
        } catch (err) {
          expect(err).toBeInstanceOf(InvalidContextError);
        }
      }),
      { seed: 12, numRuns: 2000 },
    );
  });

  it("decodes whatever it opens (the payload was encoded by this cluster), for random contexts (property)", () => {
    const node = fc.constantFrom("n1", "n2", "n3", "node-ä");
    const context = fc.record({
      clock: fc.array(fc.tuple(node, fc.integer({ min: 1, max: 2 ** 40 })), { maxLength: 4 }).map((entries) => new Map(entries)),
      dots: fc.array(fc.record({ node, counter: fc.integer({ min: 1, max: 2 ** 40 }) }), { maxLength: 3 }),
    });
    fc.assert(
      fc.property(context, fc.string({ minLength: 1, maxLength: 30 }), (ctx, key) => {
        const bytes = encodeClientContext(ctx);
        expect(encodeClientContext(decodeClientContext(sealer.open(key, sealer.seal(key, bytes))))).toEqual(bytes);
      }),
      { seed: 13, numRuns: 300 },
    );
  });
});
