// Valid (well-formed, though often hostile in content) request messages for the fuzz tests in
// this folder, drawn from a seeded Rng: the starting points the mutations damage.
import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import {
  DeleteRequestSchema,
  ExchangeRequestSchema,
  ExportRequestSchema,
  ImportRequestSchema,
  GetRequestSchema,
  HealthCheckRequestSchema,
  PutRequestSchema,
  ReadRequestSchema,
  type CoordinateRequestSchema,
  ReplicaOpSchema,
  ScanRequestSchema,
  SendRequestSchema,
  StatusRequestSchema,
  StreamRequestSchema,
  WriteRequestSchema,
} from "@dynamo-ts/proto";
import { encodeSiblingSet, type SiblingSet, update } from "@dynamo-ts/vclock";
import type { Rng } from "./wire.js";

const utf8 = new TextEncoder();

/** Keys as clients and peers might send them: ordinary, odd Unicode, empty, at and over 256 bytes. */
export function anyKey(rng: Rng): string {
  switch (rng.int(10)) {
    case 0:
      return "";
    case 1:
      return rng.pick(["\uFEFFk", "é", "日本", "a\u0000b", "k\u{1F600}", "\u202Eevil", "/", "..", "%ff"]);
    case 2:
      return "k".repeat(256);
    case 3:
      return "k".repeat(257);
    case 4:
      return "é".repeat(129); // 258 UTF-8 bytes in 129 characters
    case 5:
      return "x".repeat(rng.pick([1024, 70_000]));
    default:
      return `fuzz-${rng.int(50)}`;
  }
}

/** A well-formed sibling set with a few versions, some deleted, of values up to `maxValue` bytes. */
export function anySiblingSet(rng: Rng, maxValue = 64): SiblingSet {
  let set: SiblingSet | undefined;
  const versions = 1 + rng.int(4);
  for (let k = 0; k < versions; k++) {
    const node = rng.pick(["n1", "n2", "n3", "peer-é"]);
    const value = rng.chance(0.2) ? null : rng.bytes(rng.int(maxValue + 1));
    const context = set !== undefined && rng.chance(0.5) ? set.clock : new Map<string, number>();
    set = update(set, context, node, value, 1_700_000_000_000 + rng.int(1_000_000));
  }
  return set as SiblingSet;
}

export function anyRecord(rng: Rng): Uint8Array {
  switch (rng.int(6)) {
    case 0:
      return new Uint8Array();
    case 1:
      return rng.bytes(rng.int(40));
    default:
      return encodeSiblingSet(anySiblingSet(rng));
  }
}

const optionalUint32 = (rng: Rng): number | undefined =>
  rng.chance(0.5) ? undefined : rng.pick([0, 1, 2, 3, 4, 600_000, 600_001, 2 ** 31, 2 ** 32 - 1, rng.int(10_000)]);

export type Init<D extends DescMessage> = MessageInitShape<D>;

export function getRequest(rng: Rng): Init<typeof GetRequestSchema> {
  return { key: anyKey(rng), r: optionalUint32(rng), timeoutMs: optionalUint32(rng) };
}

export function putRequest(rng: Rng, context: Uint8Array = new Uint8Array()): Init<typeof PutRequestSchema> {
  return { key: anyKey(rng), value: rng.bytes(rng.int(64)), context, w: optionalUint32(rng), timeoutMs: optionalUint32(rng) };
}

export function deleteRequest(rng: Rng, context: Uint8Array = new Uint8Array()): Init<typeof DeleteRequestSchema> {
  return { key: anyKey(rng), context, w: optionalUint32(rng), timeoutMs: optionalUint32(rng) };
}

export function healthCheckRequest(rng: Rng): Init<typeof HealthCheckRequestSchema> {
  return { service: rng.pick(["", "dynamo.v1.KVService", "dynamo.v1.ReplicaService", "grpc.health.v1.Health", "no.such.Service", "\uFEFF"]) };
}

export function statusRequest(): Init<typeof StatusRequestSchema> {
  return {};
}

export function writeRequest(rng: Rng): Init<typeof WriteRequestSchema> {
  return { key: anyKey(rng), record: anyRecord(rng), hintFor: rng.pick(["", "", "", "n1", "n2", "nobody", "h".repeat(300), "h".repeat(1100), "\u{1F600}"]) };
}

export function readRequest(rng: Rng): Init<typeof ReadRequestSchema> {
  return { key: anyKey(rng) };
}

/** A forwarded client write as another node sends it on the replica stream (a Put, or a Delete without a value). */
export function coordinateRequest(rng: Rng): Init<typeof CoordinateRequestSchema> {
  return {
    key: anyKey(rng),
    ...(rng.chance(0.3) ? {} : { value: rng.bytes(rng.int(64)) }),
    contentType: rng.pick(["", "", "text/plain", "a".repeat(300), "\u0000"]),
    context: rng.chance(0.7) ? new Uint8Array() : rng.bytes(rng.int(80)),
    w: optionalUint32(rng),
    timeoutMs: optionalUint32(rng),
  };
}

export function replicaOp(rng: Rng): Init<typeof ReplicaOpSchema> {
  const id = rng.pick([0, 1, 2, 2 ** 32 - 1, rng.int(100)]);
  switch (rng.int(6)) {
    case 0:
      return { id };
    case 1:
    case 2:
      return { id, op: { case: "write", value: writeRequest(rng) } };
    case 3:
      return { id, op: { case: "coordinate", value: coordinateRequest(rng) } };
    default:
      return { id, op: { case: "read", value: readRequest(rng) } };
  }
}

export function streamRequest(rng: Rng): Init<typeof StreamRequestSchema> {
  return { ops: Array.from({ length: rng.int(6) }, () => replicaOp(rng)) };
}

export function sendRequest(message: Uint8Array): Init<typeof SendRequestSchema> {
  return { message };
}

/** An exchange step; `open` is the (range, depth, node) a responder would accept, to get past it. */
export function exchangeRequest(
  rng: Rng,
  open: { start: number; end: number; depth: number; nodeId: string; hashFormatVersion: number },
): Init<typeof ExchangeRequestSchema> {
  const uint32 = () => rng.pick([0, 1, open.depth, open.depth + 1, 2 ** 16, 2 ** 31, 2 ** 32 - 1, rng.int(64), rng.int(2 ** 16)]);
  switch (rng.int(6)) {
    case 0: {
      const exact = rng.chance(0.6);
      return {
        step: {
          case: "open",
          value: {
            range: exact ? { start: open.start, end: open.end } : rng.chance(0.2) ? undefined : { start: uint32(), end: uint32() },
            depth: exact ? open.depth : uint32(),
            hashFormatVersion: exact || rng.chance(0.5) ? open.hashFormatVersion : uint32(),
            nodeId: exact ? open.nodeId : rng.pick(["", open.nodeId, "nobody", anyKey(rng)]),
          },
        },
      };
    }
    case 1:
      return { step: { case: "nodeHashes", value: { level: uint32(), indices: Array.from({ length: rng.pick([0, 1, 2, 16, 8193]) }, uint32) } } };
    case 2:
      return { step: { case: "leafEntries", value: { leaves: Array.from({ length: rng.pick([0, 1, 3, 1025]) }, uint32) } } };
    case 3:
      return { step: { case: "fetch", value: { keys: Array.from({ length: rng.pick([0, 1, 5, 257]) }, () => anyKey(rng)) } } };
    case 4:
      return {
        step: { case: "push", value: { records: Array.from({ length: rng.pick([0, 1, 4, 257]) }, () => ({ key: anyKey(rng), record: anyRecord(rng) })) } },
      };
    default:
      return {};
  }
}

export function encode<D extends DescMessage>(schema: D, init: Init<D>): Uint8Array {
  return toBinary(schema, create(schema, init));
}

export function utf8Bytes(text: string): Uint8Array {
  return utf8.encode(text);
}

const anyToken = (rng: Rng): number => rng.pick([0, 1, 2 ** 31, 2 ** 32 - 1, rng.int(2 ** 31) * 2]);

export function scanRequest(rng: Rng): Init<typeof ScanRequestSchema> {
  return {
    afterToken: anyToken(rng),
    afterKey: rng.chance(0.5) ? "" : anyKey(rng),
    lastToken: anyToken(rng),
    maxKeys: optionalUint32(rng) ?? 0,
    maxBytes: optionalUint32(rng) ?? 0,
  };
}

export function exportRequest(rng: Rng): Init<typeof ExportRequestSchema> {
  return {
    range: rng.chance(0.5) ? undefined : { start: anyToken(rng), end: anyToken(rng) },
    after: rng.chance(0.5) ? undefined : { token: anyToken(rng), key: anyKey(rng) },
    timeoutMs: optionalUint32(rng),
    maxBatchKeys: optionalUint32(rng) ?? 0,
    maxBatchBytes: optionalUint32(rng) ?? 0,
  };
}

export function importRequest(rng: Rng): Init<typeof ImportRequestSchema> {
  return {
    records: Array.from({ length: rng.int(4) }, (_, i) => ({
      line: BigInt(i + 1),
      key: anyKey(rng),
      record: anyRecord(rng),
      values: Array.from({ length: rng.int(3) }, () => ({ sha256: rng.bytes(32), contentType: rng.pick(["", "text/plain", "\u0000"]) })),
      deleted: rng.chance(0.2),
    })),
  };
}
