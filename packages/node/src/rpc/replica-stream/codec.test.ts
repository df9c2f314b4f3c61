import { create, toBinary } from "@bufbuild/protobuf";
import { StreamRequestSchema, StreamResponseSchema } from "@dynamo-ts/proto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { OpInit, ResultInit } from "./batching.js";
import { encodeStreamRequest, encodeStreamResponse } from "./codec.js";

const id = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 300 }), fc.integer({ min: 0, max: 0xffff_ffff }));
// Any string, lone surrogates included (both encoders write U+FFFD for them), and long ones (multi-byte lengths).
const text = fc.oneof(fc.string({ maxLength: 20 }), fc.string({ unit: "binary", maxLength: 20 }), fc.string({ minLength: 128, maxLength: 300 }));
const bytes = fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ minLength: 120, maxLength: 20_000 }));

const op: fc.Arbitrary<OpInit> = fc.record({
  id,
  op: fc.oneof(
    fc.record({ case: fc.constant("write" as const), value: fc.record({ key: text, record: bytes, hintFor: text }) }),
    fc.record({ case: fc.constant("read" as const), value: fc.record({ key: text }) }),
    fc.record({
      case: fc.constant("coordinate" as const),
      // A Put (value set, possibly empty) or a Delete (value left out).
      value: fc.record(
        {
          key: text,
          value: bytes,
          contentType: text,
          context: bytes,
          w: fc.oneof(fc.constant(0), fc.nat(5), fc.nat()),
          timeoutMs: fc.oneof(fc.constant(0), fc.nat()),
        },
        { requiredKeys: ["key", "context", "w", "timeoutMs"] },
      ),
    }),
    fc.constant({ case: undefined }),
  ),
});

const result: fc.Arbitrary<ResultInit> = fc.record({
  id,
  result: fc.oneof(
    fc.constant({ case: "write" as const, value: {} }),
    fc.record({ case: fc.constant("read" as const), value: fc.record({ record: bytes }) }),
    fc.record({
      case: fc.constant("error" as const),
      value: fc.record({ code: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 16 }), fc.nat()), message: text, declined: fc.boolean() }),
    }),
    fc.record({ case: fc.constant("coordinate" as const), value: fc.record({ context: bytes }) }),
    fc.constant({ case: undefined }),
  ),
});

describe("the replica stream's hand-written encoders", () => {
  it("write a StreamRequest byte for byte as protobuf-es does", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 12 }), (ops) => {
        const expected = Buffer.from(toBinary(StreamRequestSchema, create(StreamRequestSchema, { ops })));
        expect(Buffer.from(encodeStreamRequest(ops))).toEqual(expected);
        expect(encodeStreamRequest(ops, 5).subarray(5)).toEqual(expected);
      }),
      { numRuns: 2_000, seed: 17 },
    );
  });

  it("write a StreamResponse byte for byte as protobuf-es does", () => {
    fc.assert(
      fc.property(fc.array(result, { maxLength: 12 }), (results) => {
        const expected = Buffer.from(toBinary(StreamResponseSchema, create(StreamResponseSchema, { results })));
        expect(Buffer.from(encodeStreamResponse(results))).toEqual(expected);
        expect(encodeStreamResponse(results, 5).subarray(5)).toEqual(expected);
      }),
      { numRuns: 2_000, seed: 19 },
    );
  });

  it("write an empty message as no bytes", () => {
    expect(encodeStreamRequest([]).byteLength).toBe(0);
    expect(encodeStreamResponse([]).byteLength).toBe(0);
  });
});
