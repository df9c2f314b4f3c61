// A live fuzzer: a real 3-node cluster (test-support/cluster.ts) gets mutated valid requests for
// about 20 s, over every protocol a node speaks on its one port:
//
//   connect-json/h1    Connect unary, JSON, HTTP/1.1 (and Connect GET for idempotent methods)
//   connect-proto/h1   Connect unary, binary protobuf, HTTP/1.1 (and Connect GET)
//   connect-proto/h2   Connect unary, binary protobuf, HTTP/2 with prior knowledge
//   grpc/h2            gRPC (5-byte envelope, trailers), HTTP/2 with prior knowledge
//   grpc-web/h1        gRPC-Web binary (envelope, trailer frame), HTTP/1.1
//
// to KVService Get/Put/Delete, Health Check, AdminService Status, and the internal ReplicaService
// Write/Read without the cluster secret. Mutations: protobuf bit flips, truncation, extension,
// splices and forged length/varint fields; garbage envelopes and length prefixes; compression
// flags without compression; invalid UTF-8 in keys (binary and JSON); huge, negative and
// fractional numbers and wrong types in JSON; wrong or missing content types; absurd timeout
// headers; bodies a bit over the limits; empty bodies; random and foreign contexts.
//
// Every answer must be an HTTP response whose code (Connect: status + JSON code; gRPC and
// gRPC-Web: grpc-status) is a client-error code: never Internal, Unknown or DataLoss, never a
// reset or a hang. Unavailable and DeadlineExceeded count only where the request made them
// legitimate (a timeout of a few ms); any other is reported as unjustified. Cases with an exact
// expectation (valid requests, a 1 MiB value, a huge timeout on a valid request, invalid UTF-8,
// a forged context) must get exactly it. No node may exit; afterwards the control key must still
// be readable and writable through every node, and every node's health SERVING.
//
// Reproducible: case i is drawn from its own Rng(seed, i). The seed is logged; set
// LIVE_FUZZ_SEED to replay, LIVE_FUZZ_MS to change the duration.
import * as http from "node:http";
import * as http2 from "node:http2";
import { brotliCompressSync, gzipSync } from "node:zlib";
import { create, type DescMessage, fromBinary, type MessageShape, toBinary, toJsonString } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  DeleteRequestSchema,
  GetRequestSchema,
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
  PutRequestSchema,
  ReadRequestSchema,
  StatusRequestSchema,
  WriteRequestSchema,
} from "@dynamo-ts/proto";
import { encodeSiblingSet } from "@dynamo-ts/vclock";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { messageLimits } from "../rpc/message-limits.js";
import { TestCluster, type TestNode } from "../test-support/cluster.js";
import * as gen from "../fuzz/messages.js";
import { envelope, mutateBytes, Rng } from "../fuzz/wire.js";

const SEED = Number(process.env["LIVE_FUZZ_SEED"] ?? 0x5eed2024);
const DURATION_MS = Number(process.env["LIVE_FUZZ_MS"] ?? 20_000);
const WORKERS = Number(process.env["LIVE_FUZZ_WORKERS"] ?? 8);
/** LIVE_FUZZ_TRACE=1 logs every request and its answer (with LIVE_FUZZ_WORKERS=1, in order). */
const TRACE = process.env["LIVE_FUZZ_TRACE"] === "1";
/** No answer within this long is a hang (the nodes' default deadline is 3 s in the harness). */
const ANSWER_TIMEOUT_MS = 15_000;
const CONTROL_KEY = "fuzz-control-key";

// The nodes run with the default limits (test-support/cluster.ts passes none).
const MAX_VALUE_BYTES = 1024 * 1024;
const LIMITS = messageLimits({ maxKeyBytes: 256, maxValueBytes: MAX_VALUE_BYTES, maxRecordBytes: 4 * 1024 * 1024 });

// --- codes -----------------------------------------------------------------------------------------

const CODE_NAMES = [
  "ok",
  "canceled",
  "unknown",
  "invalid_argument",
  "deadline_exceeded",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "internal",
  "unavailable",
  "data_loss",
  "unauthenticated",
];
const CLIENT_CODES = new Set([
  "ok",
  "canceled",
  "invalid_argument",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "unauthenticated",
]);
const JUSTIFIABLE = new Set(["unavailable", "deadline_exceeded"]);

type Protocol = "connect-json/h1" | "connect-proto/h1" | "connect-proto/h2" | "grpc/h2" | "grpc-web/h1";
const PROTOCOLS: readonly Protocol[] = ["connect-json/h1", "connect-proto/h1", "connect-proto/h2", "grpc/h2", "grpc-web/h1"];

type Kind = "get" | "put" | "delete" | "health" | "status" | "replica-write" | "replica-read";

interface Method {
  readonly kind: Kind;
  readonly path: string;
  readonly schema: DescMessage;
  /** The node's read limit for this service. */
  readonly limit: number;
  readonly idempotent: boolean;
  /** What a valid, sane request gets. */
  readonly baseline: readonly string[];
}

const METHODS: readonly Method[] = [
  // A Get of a key never written is NotFound. Puts are blind writes to a few keys: once a key
  // holds --max-siblings (100) concurrent values, a further blind write is FailedPrecondition.
  {
    kind: "get",
    path: "/dynamo.v1.KVService/Get",
    schema: GetRequestSchema,
    limit: LIMITS.publicReadMaxBytes,
    idempotent: true,
    baseline: ["ok", "not_found"],
  },
  {
    kind: "put",
    path: "/dynamo.v1.KVService/Put",
    schema: PutRequestSchema,
    limit: LIMITS.publicReadMaxBytes,
    idempotent: false,
    baseline: ["ok", "failed_precondition"],
  },
  {
    kind: "delete",
    path: "/dynamo.v1.KVService/Delete",
    schema: DeleteRequestSchema,
    limit: LIMITS.publicReadMaxBytes,
    idempotent: false,
    baseline: ["ok", "failed_precondition"],
  },
  {
    kind: "health",
    path: "/grpc.health.v1.Health/Check",
    schema: HealthCheckRequestSchema,
    limit: LIMITS.controlReadMaxBytes,
    idempotent: false,
    baseline: ["ok"],
  },
  {
    kind: "status",
    path: "/dynamo.v1.AdminService/Status",
    schema: StatusRequestSchema,
    limit: LIMITS.controlReadMaxBytes,
    idempotent: true,
    // An admin call, and the fuzzer carries no credentials.
    baseline: ["unauthenticated"],
  },
  {
    kind: "replica-write",
    path: "/dynamo.v1.ReplicaService/Write",
    schema: WriteRequestSchema,
    limit: LIMITS.internalReadMaxBytes,
    idempotent: false,
    baseline: ["permission_denied"],
  },
  {
    kind: "replica-read",
    path: "/dynamo.v1.ReplicaService/Read",
    schema: ReadRequestSchema,
    limit: LIMITS.internalReadMaxBytes,
    idempotent: false,
    baseline: ["permission_denied"],
  },
];

// --- requests ----------------------------------------------------------------------------------------

interface WireRequest {
  readonly method: "POST" | "GET";
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array;
}

interface Case {
  readonly index: number;
  readonly protocol: Protocol;
  readonly method: Method;
  readonly mutation: string;
  readonly request: WireRequest;
  /** Exactly one of these codes is right (undefined: any client-error code). */
  readonly expect?: readonly string[];
  /** Why Unavailable / DeadlineExceeded would be legitimate for this request, if they would. */
  readonly justification?: string;
}

/** What the fuzzer learned from the cluster before starting: real contexts to misuse. */
interface Material {
  readonly controlContext: Uint8Array;
}

const saneKey = (rng: Rng) => `fuzz-${rng.int(40)}`;

function saneMessage(rng: Rng, method: Method): MessageShape<DescMessage> {
  const init = ((): object => {
    switch (method.kind) {
      case "get":
        return { key: saneKey(rng) };
      case "put":
        return { key: saneKey(rng), value: rng.bytes(rng.int(32)) };
      case "delete":
        return { key: saneKey(rng) };
      case "health":
        return { service: rng.pick(["", "dynamo.v1.KVService"]) };
      case "status":
        return {};
      case "replica-write":
        return { key: saneKey(rng), record: encodeSiblingSet(gen.anySiblingSet(rng)) };
      case "replica-read":
        return { key: saneKey(rng) };
    }
  })();
  return create(method.schema, init as never);
}

/** A well-formed message with hostile field values (odd keys, r/w/timeout out of range, random contexts). */
function hostileFields(rng: Rng, method: Method): MessageShape<DescMessage> {
  const context = rng.bytes(rng.int(48));
  const init = ((): object => {
    switch (method.kind) {
      case "get":
        return gen.getRequest(rng);
      case "put":
        return gen.putRequest(rng, rng.chance(0.5) ? new Uint8Array() : context);
      case "delete":
        return gen.deleteRequest(rng, rng.chance(0.5) ? new Uint8Array() : context);
      case "health":
        return gen.healthCheckRequest(rng);
      case "status":
        return {};
      case "replica-write":
        return gen.writeRequest(rng);
      case "replica-read":
        return gen.readRequest(rng);
    }
  })();
  return create(method.schema, init as never);
}

function isJson(protocol: Protocol): boolean {
  return protocol === "connect-json/h1";
}

function isEnveloped(protocol: Protocol): boolean {
  return protocol === "grpc/h2" || protocol === "grpc-web/h1";
}

function baseHeaders(protocol: Protocol): Record<string, string> {
  switch (protocol) {
    case "connect-json/h1":
      return { "content-type": "application/json", "connect-protocol-version": "1" };
    case "connect-proto/h1":
    case "connect-proto/h2":
      return { "content-type": "application/proto", "connect-protocol-version": "1" };
    case "grpc/h2":
      return { "content-type": "application/grpc", te: "trailers" };
    case "grpc-web/h1":
      return { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" };
  }
}

const utf8 = new TextEncoder();

/** The protocol's body for one message (JSON text, protobuf, or an enveloped protobuf). */
function bodyOf(protocol: Protocol, method: Method, message: MessageShape<DescMessage>): Uint8Array {
  if (isJson(protocol)) return utf8.encode(toJsonString(method.schema, message));
  const binary = toBinary(method.schema, message);
  return isEnveloped(protocol) ? envelope(binary) : binary;
}

/** Wraps protobuf bytes for the protocol (JSON protocols get them as is: a wrong body). */
function frame(protocol: Protocol, binary: Uint8Array): Uint8Array {
  return isEnveloped(protocol) ? envelope(binary) : binary;
}

function post(protocol: Protocol, method: Method, body: Uint8Array, extra: Record<string, string> = {}): WireRequest {
  return { method: "POST", path: method.path, headers: { ...baseHeaders(protocol), ...extra }, body };
}

function timeoutHeader(protocol: Protocol): string {
  return protocol.startsWith("connect") ? "connect-timeout-ms" : "grpc-timeout";
}

/** Timeout header values: [value, what a valid request with it must get]. */
function timeoutValue(rng: Rng, protocol: Protocol): { value: string; tiny: boolean; huge: boolean } {
  if (protocol.startsWith("connect")) {
    return rng.pick([
      { value: "99999999999", tiny: false, huge: false }, // 11 digits: the Connect spec allows at most 10
      { value: "9999999999", tiny: false, huge: true },
      { value: "4294967296", tiny: false, huge: true },
      { value: "2147483648", tiny: false, huge: true },
      { value: "600001", tiny: false, huge: true },
      { value: "0", tiny: true, huge: false },
      { value: "1", tiny: true, huge: false },
      { value: "-1", tiny: false, huge: false },
      { value: "abc", tiny: false, huge: false },
      { value: "1.5", tiny: false, huge: false },
      { value: "", tiny: false, huge: false },
      { value: "0x10", tiny: false, huge: false },
      { value: "1e9", tiny: false, huge: false },
    ]);
  }
  return rng.pick([
    { value: "99999999H", tiny: false, huge: true },
    { value: "99999999M", tiny: false, huge: true },
    { value: "99999999S", tiny: false, huge: true },
    { value: "999999999H", tiny: false, huge: false }, // 9 digits: gRPC allows at most 8
    { value: "1n", tiny: true, huge: false },
    { value: "0m", tiny: true, huge: false },
    { value: "1u", tiny: true, huge: false },
    { value: "garbage", tiny: false, huge: false },
    { value: "10Z", tiny: false, huge: false },
    { value: "-5S", tiny: false, huge: false },
    { value: "5", tiny: false, huge: false },
    { value: "", tiny: false, huge: false },
  ]);
}

/** A valid body of exactly `target` bytes: JSON padded with whitespace, protobuf with a large field. */
function bodyOfSize(protocol: Protocol, method: Method, target: number): Uint8Array {
  if (isJson(protocol)) {
    const json = Buffer.from(
      toJsonString(
        method.schema,
        create(method.schema, (method.kind === "status" ? {} : method.kind === "health" ? { service: "" } : { key: "fuzz-big" }) as never),
      ),
    );
    return Buffer.concat([json, Buffer.alloc(Math.max(0, target - json.byteLength), 0x20)]);
  }
  const make = (filler: number): MessageShape<DescMessage> => {
    switch (method.kind) {
      case "put":
        return create(PutRequestSchema, { key: "fuzz-big", value: new Uint8Array(filler).fill(0x61) });
      case "replica-write":
        return create(WriteRequestSchema, { key: "fuzz-big", record: new Uint8Array(filler).fill(0x61) });
      case "health":
        return create(HealthCheckRequestSchema, { service: "s".repeat(filler) });
      case "status":
        // An unknown field the size of the filler: still one message of that many bytes.
        return fromBinary(StatusRequestSchema, Buffer.concat([Uint8Array.from([0x7a, ...varintBytes(filler)]), new Uint8Array(filler).fill(0x61)]));
      default:
        return create(method.schema, { key: "k".repeat(filler) } as never);
    }
  };
  let filler = target;
  for (let k = 0; k < 8; k++) {
    const size = bodyOf(protocol, method, make(filler)).byteLength;
    if (size === target) break;
    // JSON base64 grows by 4/3: scale the correction.
    const scale = isJson(protocol) && (method.kind === "put" || method.kind === "replica-write") ? 0.75 : 1;
    filler = Math.max(0, filler + Math.round((target - size) * scale) + (size > target ? -1 : 0));
  }
  return bodyOf(protocol, method, make(filler));
}

function varintBytes(value: number): number[] {
  const out: number[] = [];
  while (value >= 0x80) {
    out.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  out.push(value);
  return out;
}

/** Protobuf bytes of a message whose field 1 (key / service) holds `raw` bytes (invalid UTF-8 allowed). */
function rawStringField(raw: Uint8Array, rest: Uint8Array = new Uint8Array()): Uint8Array {
  return Uint8Array.from([0x0a, ...varintBytes(raw.byteLength), ...raw, ...rest]);
}

const INVALID_UTF8 = [
  Uint8Array.from([0x66, 0x75, 0xff, 0x7a]),
  Uint8Array.from([0xc3, 0x28]),
  Uint8Array.from([0xed, 0xa0, 0x80]),
  Uint8Array.from([0xf8, 0x88, 0x80, 0x80, 0x80]),
  Uint8Array.from([0xe2, 0x82]),
];

/** A request that asks for a deadline of a few ms may legitimately miss its quorum. */
function tinyDeadline(message: object): { justification?: string } {
  const timeoutMs = (message as { timeoutMs?: number }).timeoutMs;
  return timeoutMs !== undefined && timeoutMs > 0 && timeoutMs < 100 ? { justification: `timeout_ms ${timeoutMs}` } : {};
}

type Builder = (rng: Rng, protocol: Protocol, method: Method, material: Material) => Omit<Case, "index" | "protocol" | "method" | "mutation"> | undefined;

/** Mutation families; each returns undefined when it does not apply to the protocol or method. */
const BUILDERS: Record<string, { weight: number; build: Builder }> = {
  valid: {
    weight: 6,
    build: (rng, protocol, method) => ({ request: post(protocol, method, bodyOf(protocol, method, saneMessage(rng, method))), expect: method.baseline }),
  },
  "hostile-fields": {
    weight: 6,
    build: (rng, protocol, method) => {
      const message = hostileFields(rng, method);
      return { request: post(protocol, method, bodyOf(protocol, method, message)), ...tinyDeadline(message) };
    },
  },
  "proto-mutation": {
    weight: 14,
    build: (rng, protocol, method) => {
      if (isJson(protocol)) return undefined;
      const valid = toBinary(method.schema, rng.chance(0.5) ? saneMessage(rng, method) : hostileFields(rng, method));
      const other = toBinary(method.schema, hostileFields(rng, method));
      let bytes: Uint8Array = valid;
      for (let k = 0; k <= rng.int(3); k++) bytes = mutateBytes(rng, bytes, other);
      // A mutation may well produce a valid message asking for a deadline of a few ms.
      let decoded: object | undefined;
      try {
        decoded = fromBinary(method.schema, bytes);
      } catch {
        decoded = undefined;
      }
      return { request: post(protocol, method, frame(protocol, bytes)), ...(decoded ? tinyDeadline(decoded) : {}) };
    },
  },
  "invalid-utf8-key": {
    weight: 4,
    build: (rng, protocol, method) => {
      if (method.kind === "status") return undefined;
      const raw = rng.pick(INVALID_UTF8);
      // Health's field 1 is the service name: an invalid one is refused the same way.
      if (isJson(protocol)) {
        const field = method.kind === "health" ? "service" : "key";
        const json = Buffer.concat([Buffer.from(`{"${field}":"`), Buffer.from(raw), Buffer.from(`"}`)]);
        return { request: post(protocol, method, json), expect: ["invalid_argument"] };
      }
      return { request: post(protocol, method, frame(protocol, rawStringField(raw))), expect: ["invalid_argument"] };
    },
  },
  "json-lone-surrogate": {
    weight: 2,
    build: (rng, protocol, method) => {
      if (!isJson(protocol) || !["get", "put", "delete"].includes(method.kind)) return undefined;
      const key = rng.pick(["\\ud800", "a\\udc00b", "\\udbff\\udbff"]);
      return { request: post(protocol, method, utf8.encode(`{"key":"${key}"}`)), expect: ["invalid_argument"] };
    },
  },
  "json-numbers": {
    weight: 4,
    build: (rng, protocol, method) => {
      if (!isJson(protocol) || !["get", "put", "delete"].includes(method.kind)) return undefined;
      const field = method.kind === "get" ? rng.pick(["r", "timeoutMs"]) : rng.pick(["w", "timeoutMs"]);
      const value = rng.pick([
        "1e400",
        "-1e400",
        "99999999999999999999",
        "-1",
        "4294967296",
        "1.5",
        "-0.0",
        "1e-7",
        "NaN",
        '"Infinity"',
        '"-1"',
        '"99999999999999999999"',
        "0x10",
        "1_0",
      ]);
      return { request: post(protocol, method, utf8.encode(`{"key":"${saneKey(rng)}","${field}":${value}}`)) };
    },
  },
  "json-wrong-types": {
    weight: 4,
    build: (rng, protocol, method) => {
      if (!isJson(protocol)) return undefined;
      const field = rng.pick(
        method.kind === "put"
          ? ["key", "value", "context", "w"]
          : method.kind === "health"
            ? ["service"]
            : method.kind === "status"
              ? ["nodeId", "bogus"]
              : ["key", "r", "context"],
      );
      const value = rng.pick([
        "123",
        "true",
        "null",
        "[]",
        "{}",
        '"%%%not base64%%%"',
        '"AAAA"',
        '{"nested":{"deep":[1,2,3]}}',
        '"' + "A".repeat(rng.int(50)) + '"',
      ]);
      return { request: post(protocol, method, utf8.encode(`{"${field}":${value}}`)) };
    },
  },
  "json-text": {
    weight: 5,
    build: (rng, protocol, method) => {
      if (!isJson(protocol)) return undefined;
      const text = toJsonString(method.schema, rng.chance(0.5) ? saneMessage(rng, method) : hostileFields(rng, method));
      const variants = [
        () => text.slice(0, rng.int(text.length)),
        () => text + rng.pick(["}", "]", ",", "garbage", "\u0000", "{}"]),
        () =>
          Buffer.from(mutateBytes(rng, utf8.encode(text), utf8.encode(text), rng.pick(["flip", "set", "insert", "delete", "duplicate"] as const))).toString(
            "latin1",
          ),
        () => rng.pick(["null", "[]", "true", "0", '""', "{", "}", "{}{}", " ", "\ufeff{}"]),
        () => "[".repeat(100_000) + "]".repeat(100_000),
        () => `{${Array.from({ length: 20_000 }, (_, i) => `"f${i}":1`).join(",")}}`,
        () => `{"key":"${saneKey(rng)}","key":"${saneKey(rng)}"}`,
        () => `{"key":"${saneKey(rng)}","bogus":1}`,
      ];
      return { request: post(protocol, method, Buffer.from(rng.pick(variants)(), "latin1")) };
    },
  },
  "connect-get": {
    weight: 5,
    build: (rng, protocol, method) => {
      if (!method.idempotent || !(protocol === "connect-json/h1" || protocol === "connect-proto/h1")) return undefined;
      const message = saneMessage(rng, method);
      const json = toJsonString(method.schema, message);
      const binary = Buffer.from(toBinary(method.schema, message)).toString("base64url");
      const queries = [
        { q: `connect=v1&encoding=json&message=${encodeURIComponent(json)}`, expect: method.baseline },
        { q: `connect=v1&encoding=proto&base64=1&message=${binary}`, expect: method.baseline },
        { q: `connect=v1&encoding=json&message=%7B%22key%22%3A%22fu%FFzz%22%7D`, expect: method.kind === "get" ? ["invalid_argument"] : undefined },
        { q: `connect=v1&encoding=json&message=%E0%A4`, expect: ["invalid_argument"] },
        { q: `connect=v1&encoding=proto&base64=1&message=${rng.pick(["!!!!", "%25%25", "a", "@@", "%FF"])}`, expect: ["invalid_argument"] },
        { q: `connect=v1&encoding=proto&base64=1&message=====`, expect: undefined }, // padding only: the empty message
        { q: `connect=v1&encoding=json&base64=1&message=${rng.pick(["!!!!", "e30", "%7B%7D"])}`, expect: undefined },
        {
          q: `connect=v1&encoding=proto&message=${encodeURIComponent(Buffer.from(mutateBytes(rng, toBinary(method.schema, message), toBinary(method.schema, message))).toString("latin1"))}`,
          expect: undefined,
        },
        { q: `connect=v1&encoding=xml&message=x`, expect: undefined },
        { q: `connect=v9&encoding=json&message=%7B%7D`, expect: undefined },
        { q: `encoding=json`, expect: undefined },
        { q: `connect=v1&encoding=json&message=${"%".repeat(rng.int(5))}`, expect: undefined },
      ];
      const pick = rng.pick(queries);
      return {
        request: { method: "GET", path: `${method.path}?${pick.q}`, headers: {}, body: new Uint8Array() },
        ...(pick.expect ? { expect: pick.expect } : {}),
      };
    },
  },
  "content-type": {
    weight: 4,
    build: (rng, protocol, method) => {
      const body = bodyOf(protocol, method, saneMessage(rng, method));
      const type = rng.pick([
        undefined,
        "text/plain",
        "application/octet-stream",
        "application/json; charset=latin1",
        "application/json; charset=utf-8",
        "application/proto",
        "application/json",
        "application/grpc",
        "application/grpc+json",
        "application/grpc-web+json",
        "application/grpc-web-text",
        "application/connect+proto",
        "multipart/form-data; boundary=x",
        "APPLICATION/JSON",
        "application/x-protobuf",
        "",
      ]);
      const headers = { ...baseHeaders(protocol) };
      if (type === undefined) delete (headers as Record<string, string | undefined>)["content-type"];
      else headers["content-type"] = type;
      return { request: { method: "POST", path: method.path, headers, body } };
    },
  },
  "timeout-header": {
    weight: 5,
    build: (rng, protocol, method) => {
      const timeout = timeoutValue(rng, protocol);
      const request = post(protocol, method, bodyOf(protocol, method, saneMessage(rng, method)), { [timeoutHeader(protocol)]: timeout.value });
      if (timeout.tiny)
        return { request, expect: [...method.baseline, "deadline_exceeded", "unavailable"], justification: `a timeout header of ${timeout.value}` };
      // A huge deadline is clamped to the node's longest one: the request must go through as usual.
      if (timeout.huge) return { request, expect: method.baseline };
      // A malformed header (out of the protocol's format) may be refused, or ignored.
      return { request, expect: [...method.baseline, "invalid_argument"] };
    },
  },
  oversized: {
    weight: 1,
    build: (rng, protocol, method) => {
      if (!["put", "health", "status", "get"].includes(method.kind)) return undefined;
      const over = 1 + rng.int(2048);
      // An envelope's 5 bytes are not part of the message the limit applies to.
      const target = method.limit + over + (isEnveloped(protocol) ? 5 : 0);
      return { request: post(protocol, method, bodyOfSize(protocol, method, target)), expect: ["resource_exhausted"] };
    },
  },
  "max-value": {
    weight: 1,
    build: (rng, protocol, method) => {
      if (method.kind !== "put") return undefined;
      // Exactly --max-value-bytes, under a key of its own (so that no record grows past its limit).
      const message = create(PutRequestSchema, { key: `fuzz-max-${rng.int(1_000_000_000)}`, value: new Uint8Array(MAX_VALUE_BYTES).fill(0x62) });
      return { request: post(protocol, method, bodyOf(protocol, method, message)), expect: ["ok"] };
    },
  },
  "over-value": {
    weight: 1,
    build: (rng, protocol, method) => {
      if (method.kind !== "put") return undefined;
      const message = create(PutRequestSchema, { key: saneKey(rng), value: new Uint8Array(MAX_VALUE_BYTES + 1 + rng.int(1000)).fill(0x63) });
      return { request: post(protocol, method, bodyOf(protocol, method, message)), expect: ["invalid_argument"] };
    },
  },
  "bad-context": {
    weight: 4,
    build: (rng, protocol, method, material) => {
      if (method.kind !== "put" && method.kind !== "delete") return undefined;
      const flipped = material.controlContext.slice();
      if (flipped.byteLength > 0) flipped[rng.int(flipped.byteLength)]! ^= 1 << rng.int(8);
      const context = rng.pick([
        rng.bytes(1 + rng.int(64)),
        Uint8Array.from([0xe1, ...rng.bytes(rng.int(40))]),
        Uint8Array.from([0xc1, 1, 1, 0x61, 1]),
        material.controlContext, // sealed for another key
        flipped,
      ]);
      const key = saneKey(rng);
      if (isJson(protocol) && rng.chance(0.4)) {
        const text = rng.pick(["!!!!", "AAAA", "====", "4QAA", "a", "YWJj\nZA==", "_-_-"]);
        return { request: post(protocol, method, utf8.encode(`{"key":"${key}","context":"${text}"}`)), expect: ["invalid_argument"] };
      }
      const message = create(method.schema, { key, context } as never);
      return { request: post(protocol, method, bodyOf(protocol, method, message)), expect: ["invalid_argument"] };
    },
  },
  "empty-body": {
    weight: 2,
    build: (_rng, protocol, method) => ({ request: post(protocol, method, new Uint8Array()) }),
  },
  "unknown-method": {
    weight: 1,
    build: (rng, protocol, method) => {
      const path = rng.pick([
        "/dynamo.v1.KVService/Nope",
        "/dynamo.v1.Nope/Get",
        "/grpc.reflection.v1.Nope/ServerReflectionInfo",
        "/",
        "/dynamo.v1.KVService/get",
        "/dynamo.v1.KVService/Get/extra",
      ]);
      return { request: { ...post(protocol, method, bodyOf(protocol, method, saneMessage(rng, method))), path }, expect: ["unimplemented"] };
    },
  },
  envelope: {
    weight: 8,
    build: (rng, protocol, method) => {
      if (!isEnveloped(protocol)) return undefined;
      const binary = toBinary(method.schema, saneMessage(rng, method));
      const variants: Array<() => { body: Uint8Array; headers?: Record<string, string>; expect?: string[] }> = [
        () => ({ body: envelope(binary, 0, binary.byteLength + 1 + rng.int(100)) }), // claims more than sent
        () => ({ body: envelope(binary, 0, Math.max(0, binary.byteLength - 1 - rng.int(4))) }), // claims less: trailing bytes
        () => ({ body: envelope(binary, 0, 0xffffffff), expect: ["resource_exhausted", "invalid_argument"] }),
        () => ({ body: envelope(binary, rng.pick([0x02, 0x04, 0x80, 0xfe, 0xff])) }),
        () => ({ body: envelope(binary, 0x01), expect: ["invalid_argument"] }), // compressed, no encoding
        // The node accepts gzip and br; any other encoding is Unimplemented (gRPC spec). Data that
        // does not decompress is InvalidArgument, unless the method refuses the caller first.
        () => ({ body: envelope(binary, 0x01), headers: { "grpc-encoding": "gzip" }, expect: undecodable(method, binary) }), // not gzip data
        () => ({ body: envelope(gzipSync(binary), 0x01), headers: { "grpc-encoding": "gzip" }, expect: [...method.baseline] }),
        () => ({ body: envelope(brotliCompressSync(binary), 0x01), headers: { "grpc-encoding": "br" }, expect: [...method.baseline] }),
        () => ({ body: envelope(binary, 0x01), headers: { "grpc-encoding": "br" }, expect: undecodable(method, binary) }), // not brotli data
        () => ({
          body: envelope(binary, 0x01),
          headers: { "grpc-encoding": rng.pick(["x-garbage", "identity, gzip"]) },
          expect: ["unimplemented", "invalid_argument", ...refusals(method)],
        }),
        () => ({ body: envelope(binary, 0x00), headers: { "grpc-encoding": "gzip" }, expect: [...method.baseline] }), // not flagged: nothing to decompress
        () => ({ body: envelope(binary).subarray(0, rng.int(5)) }), // header cut short
        () => ({ body: Buffer.concat([envelope(binary), envelope(binary)]) }), // two messages for a unary method
        () => ({ body: Buffer.concat([envelope(binary), rng.bytes(1 + rng.int(8))]) }),
        () => ({ body: rng.bytes(1 + rng.int(64)) }),
      ];
      const v = rng.pick(variants)();
      return { request: post(protocol, method, v.body, v.headers ?? {}), ...(v.expect ? { expect: v.expect } : {}) };
    },
  },
  "connect-compression": {
    weight: 2,
    build: (rng, protocol, method) => {
      if (isEnveloped(protocol)) return undefined;
      const body = bodyOf(protocol, method, saneMessage(rng, method));
      const v = rng.pick([
        // The node accepts gzip and br (Connect spec: any other encoding is Unimplemented); a body
        // that does not decompress is InvalidArgument, unless the method refuses the caller first.
        { body, headers: { "content-encoding": "gzip" }, expect: undecodable(method, body) },
        { body: gzipSync(body), headers: { "content-encoding": "gzip" }, expect: [...method.baseline] },
        { body: brotliCompressSync(body), headers: { "content-encoding": "br" }, expect: [...method.baseline] },
        { body, headers: { "content-encoding": "br" }, expect: undecodable(method, body) },
        { body, headers: { "content-encoding": "x-garbage" }, expect: ["unimplemented", ...refusals(method)] },
        { body: gzipSync(body).subarray(0, 12), headers: { "content-encoding": "gzip" }, expect: ["invalid_argument", ...refusals(method)] },
        { body, headers: { "content-encoding": "identity" }, expect: [...method.baseline] },
      ]);
      return { request: post(protocol, method, v.body, v.headers), expect: v.expect };
    },
  },
};

/** Codes a method answers before it reads the body: an admin or internal method refuses a caller without credentials. */
function refusals(method: Method): string[] {
  return method.baseline.filter((code) => code === "unauthenticated" || code === "permission_denied");
}

/** Expected codes for a body that claims a compression it does not have (an empty body decompresses to nothing). */
function undecodable(method: Method, body: Uint8Array): string[] {
  return body.byteLength === 0 ? ["invalid_argument", ...method.baseline] : ["invalid_argument", ...refusals(method)];
}

function makeCase(index: number, material: Material): Case {
  const rng = new Rng((SEED ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  for (;;) {
    const protocol = rng.pick(PROTOCOLS);
    const method = rng.pick(METHODS);
    const names = Object.keys(BUILDERS);
    const total = names.reduce((sum, n) => sum + BUILDERS[n]!.weight, 0);
    let draw = rng.next() * total;
    let mutation = names[0]!;
    for (const n of names) {
      draw -= BUILDERS[n]!.weight;
      if (draw < 0) {
        mutation = n;
        break;
      }
    }
    const built = BUILDERS[mutation]!.build(rng, protocol, method, material);
    if (built !== undefined) return { index, protocol, method, mutation, ...built };
  }
}

// --- sending and decoding answers -------------------------------------------------------------------

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
  readonly trailers: Record<string, string | string[] | undefined>;
}

class TransportFailure extends Error {}

const h1Agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
/** The cases each keep-alive connection carried, to tell what came before a request that hung. */
const socketHistory = new WeakMap<object, number[]>();

function sendH1(node: TestNode, req: WireRequest, index: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let history: number[] = [];
    const r = http.request(
      {
        host: "127.0.0.1",
        port: node.port,
        method: req.method,
        path: req.path,
        headers: { ...req.headers, ...(req.method === "POST" ? { "content-length": String(req.body.byteLength) } : {}) },
        agent: h1Agent,
        timeout: ANSWER_TIMEOUT_MS,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), trailers: res.trailers }));
        res.on("error", (err) => reject(new TransportFailure(`response: ${err.message}`)));
      },
    );
    r.on("socket", (socket) => {
      history = socketHistory.get(socket) ?? [];
      socketHistory.set(socket, [...history, index].slice(-5));
    });
    r.on("timeout", () => r.destroy(new TransportFailure(`no answer (timeout; earlier cases on this keep-alive connection: ${history.join(", ") || "none"})`)));
    r.on("error", (err) => reject(err instanceof TransportFailure ? err : new TransportFailure(`${(err as NodeJS.ErrnoException).code ?? ""} ${err.message}`)));
    if (req.method === "POST") r.end(Buffer.from(req.body));
    else r.end();
  });
}

const sessions = new Map<number, http2.ClientHttp2Session>();

function sessionFor(node: TestNode): http2.ClientHttp2Session {
  let session = sessions.get(node.port);
  if (session === undefined || session.closed || session.destroyed) {
    session = http2.connect(`http://127.0.0.1:${node.port}`);
    const s = session;
    s.on("error", () => sessions.get(node.port) === s && sessions.delete(node.port));
    s.on("close", () => sessions.get(node.port) === s && sessions.delete(node.port));
    sessions.set(node.port, s);
  }
  return session;
}

function sendH2(node: TestNode, req: WireRequest): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let stream: http2.ClientHttp2Stream;
    try {
      stream = sessionFor(node).request({ ":method": req.method, ":path": req.path, ...req.headers }, { endStream: req.method === "GET" });
    } catch (err) {
      reject(new TransportFailure(`cannot open a stream: ${(err as Error).message}`));
      return;
    }
    let headers: http2.IncomingHttpHeaders | undefined;
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), ANSWER_TIMEOUT_MS);
    stream.on("response", (h) => (headers = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("error", () => {
      // Reported at close, with the reset code.
    });
    stream.on("close", () => {
      clearTimeout(timer);
      // An answer cut short by a reset shows as a missing grpc-status or a truncated error body.
      if (headers === undefined) reject(new TransportFailure(`stream closed without a response (RST_STREAM code ${stream.rstCode})`));
      else resolve({ status: Number(headers[":status"]), headers, body: Buffer.concat(chunks), trailers });
    });
    if (req.method === "POST") stream.end(Buffer.from(req.body));
  });
}

const header = (h: Record<string, string | string[] | undefined>, name: string): string | undefined => {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
};

function grpcCodeName(status: string | undefined): string {
  if (status === undefined) return "no-grpc-status";
  const n = Number(status);
  return Number.isInteger(n) && CODE_NAMES[n] !== undefined ? CODE_NAMES[n]! : `grpc-status:${status}`;
}

/**
 * The RPC outcome of an answer, as a code name ("ok", "invalid_argument", ...) or "httpNNN" when
 * the answer carries none. Decoded by the protocol the node answered with (its content type),
 * which a wrong request content type may have changed.
 */
function decodeAnswer(answer: Answer): string {
  const type = header(answer.headers, "content-type") ?? "";
  if (type.startsWith("application/grpc-web")) {
    if (answer.status !== 200) return `http${answer.status}`;
    const inHeaders = header(answer.headers, "grpc-status");
    if (inHeaders !== undefined) return grpcCodeName(inHeaders);
    let pos = 0;
    while (pos + 5 <= answer.body.byteLength) {
      const flags = answer.body[pos]!;
      const length = answer.body.readUInt32BE(pos + 1);
      const data = answer.body.subarray(pos + 5, pos + 5 + length);
      if ((flags & 0x80) !== 0) return grpcCodeName(/^grpc-status: ?(\d+)/im.exec(data.toString("latin1"))?.[1]);
      pos += 5 + length;
    }
    return "no-trailer-frame";
  }
  if (type.startsWith("application/grpc")) {
    if (answer.status !== 200) return `http${answer.status}`;
    return grpcCodeName(header(answer.trailers, "grpc-status") ?? header(answer.headers, "grpc-status"));
  }
  // Connect unary (also GET): 200 is success; an error has a JSON body with its code.
  if (answer.status === 200) return "ok";
  try {
    const error = JSON.parse(answer.body.toString("utf8")) as { code?: unknown };
    if (typeof error.code === "string") return error.code;
  } catch {
    // not a Connect error body
  }
  return `http${answer.status}`;
}

type Verdict = "pass" | "justified" | "unjustified" | "wrong-code" | "bad-code" | "transport";

function judge(c: Case, code: string): Verdict {
  if (code.startsWith("transport:")) return "transport";
  const http = /^http(\d+)$/.exec(code);
  // An answer without an RPC code is still an HTTP answer: 4xx (415 for an unsupported content
  // type, 404 for a path no service serves) is the client's error; 5xx is not.
  const clientClass = http ? Number(http[1]) >= 400 && Number(http[1]) < 500 : CLIENT_CODES.has(code);
  if (c.expect !== undefined && !c.expect.includes(code)) {
    if (JUSTIFIABLE.has(code)) return c.justification ? "justified" : "unjustified";
    if (code === "unimplemented" && c.expect.includes("unimplemented")) return "pass";
    if (code === "http404" && c.expect.includes("unimplemented")) return "pass";
    return clientClass ? "wrong-code" : "bad-code";
  }
  if (clientClass) return "pass";
  if (JUSTIFIABLE.has(code)) return c.justification ? "justified" : "unjustified";
  return "bad-code";
}

interface Outcome {
  readonly c: Case;
  readonly node: string;
  readonly code: string;
  readonly verdict: Verdict;
  readonly detail: string;
}

async function run(c: Case, node: TestNode): Promise<Outcome> {
  const h2 = c.protocol.endsWith("/h2");
  let answer: Answer;
  try {
    answer = await (h2 ? sendH2(node, c.request) : sendH1(node, c.request, c.index));
  } catch (err) {
    const code = `transport:${(err as Error).message
      .split("(")[0]!
      .replace(/127\.0\.0\.1:\d+/g, "node")
      .trim()}`;
    return { c, node: node.id, code, verdict: "transport", detail: (err as Error).message };
  }
  const code = decodeAnswer(answer);
  const message = c.protocol.startsWith("grpc")
    ? decodeURIComponent(
        header(answer.trailers, "grpc-message") ??
          header(answer.headers, "grpc-message") ??
          /grpc-message: ?(.*)/i.exec(answer.body.toString("latin1"))?.[1] ??
          "",
      )
    : answer.body.subarray(0, 300).toString("utf8");
  return { c, node: node.id, code, verdict: judge(c, code), detail: message.slice(0, 200) };
}

// --- reproduction and reporting ----------------------------------------------------------------------

function shellBytes(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes)
    out += b >= 0x20 && b < 0x7f && b !== 0x27 && b !== 0x5c && b !== 0x25 ? String.fromCharCode(b) : `\\${b.toString(8).padStart(3, "0")}`;
  return out;
}

/** A command that sends the same request (curl, or a description when the body is large). */
function reproduction(c: Case, address: string): string {
  const h2 = c.protocol.endsWith("/h2") ? " --http2-prior-knowledge" : "";
  const headers = Object.entries(c.request.headers)
    .map(([k, v]) => ` -H '${k}: ${v}'`)
    .join("");
  const url = `http://${address}${c.request.path}`;
  const show = c.protocol.startsWith("grpc") ? " -v" : " -i";
  if (c.request.method === "GET") return `curl -sS${show}${h2}${headers} '${url}'`;
  if (c.request.body.byteLength > 2048) {
    return `# ${c.request.body.byteLength}-byte body (case ${c.index}, seed ${SEED}); first bytes ${Buffer.from(c.request.body.subarray(0, 24)).toString("hex")}\ncurl -sS${show}${h2}${headers} --data-binary @body.bin '${url}'`;
  }
  return `printf '${shellBytes(c.request.body)}' | curl -sS${show}${h2}${headers} --data-binary @- '${url}'`;
}

function table(outcomes: readonly Outcome[]): string {
  const codes = [...new Set(outcomes.map((o) => o.code))].sort();
  const rows = PROTOCOLS.map((p) => [
    p,
    ...codes.map((code) => String(outcomes.filter((o) => o.c.protocol === p && o.code === code).length)),
    String(outcomes.filter((o) => o.c.protocol === p).length),
  ]);
  const head = ["protocol \\ code", ...codes, "total"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((cell, i) => cell.padStart(widths[i]!)).join(" | ");
  return [line(head), widths.map((w) => "-".repeat(w)).join("-|-"), ...rows.map(line)].join("\n");
}

// --- the test ------------------------------------------------------------------------------------------

describe("live fuzzing of a 3-node cluster", () => {
  let cluster: TestCluster;

  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 3 });
  }, 60_000);

  afterAll(async () => {
    for (const session of sessions.values()) session.destroy();
    h1Agent.destroy();
    await cluster?.stop();
  });

  it(
    "answers mutated requests on every protocol with client-error codes only, and keeps serving",
    async () => {
      console.log(`live fuzz: seed ${SEED} (0x${SEED.toString(16)}), ${DURATION_MS} ms, ${WORKERS} workers; replay with LIVE_FUZZ_SEED=${SEED}`);
      const control = cluster.client("n1");
      const controlValue = `control value ${SEED}`;
      const { context: controlContext } = await control.put(CONTROL_KEY, controlValue);
      const material: Material = { controlContext };

      const outcomes: Outcome[] = [];
      let next = 0;
      const deadline = Date.now() + DURATION_MS;
      const exits = new Map<string, number>();
      const worker = async () => {
        // A node that exited fails every later request sent to it: stop there and report what killed it.
        while (Date.now() < deadline && exits.size === 0) {
          const index = next++;
          const c = makeCase(index, material);
          const node = new Rng(index ^ SEED).pick(cluster.nodes);
          const outcome = await run(c, node);
          outcomes.push(outcome);
          if (TRACE)
            console.log(
              `case ${index} -> ${node.id}: ${c.protocol} ${c.method.kind} ${c.mutation} ${c.request.method} ${c.request.path} ${JSON.stringify(c.request.headers)} ${c.request.body.byteLength} bytes ${Buffer.from(c.request.body.subarray(0, 512)).toString("hex")} => ${outcome.code}`,
            );
          for (const n of cluster.nodes) if (!n.running && !exits.has(n.id)) exits.set(n.id, index);
        }
      };
      await Promise.all(Array.from({ length: WORKERS }, worker));

      console.log(`\n${outcomes.length} requests; answers per protocol x code:\n${table(outcomes)}\n`);
      const mutations = [...new Set(outcomes.map((o) => o.c.mutation))].sort();
      console.log(`per mutation: ${mutations.map((m) => `${m}=${outcomes.filter((o) => o.c.mutation === m).length}`).join(", ")}`);

      // Failures, grouped by (protocol, mutation, expected, got), each with its smallest request.
      const failing = outcomes.filter((o) => o.verdict !== "pass" && o.verdict !== "justified");
      const groups = new Map<string, Outcome[]>();
      for (const o of failing) {
        const key = `${o.c.protocol} | ${o.c.method.kind} | ${o.c.mutation} | expected ${o.c.expect?.join("/") ?? "a client-error code"} | got ${o.code} (${o.verdict})`;
        groups.set(key, [...(groups.get(key) ?? []), o]);
      }
      const report: string[] = [];
      const byIndex = new Map(outcomes.map((o) => [o.c.index, o]));
      for (const [key, list] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
        const smallest = list.reduce((a, b) => (b.c.request.body.byteLength < a.c.request.body.byteLength ? b : a));
        const address = cluster.node(smallest.node).address;
        // For a request that hung on a keep-alive connection: what the connection carried just before.
        const earlier = /earlier cases on this keep-alive connection: ([\d, ]+)/.exec(smallest.detail)?.[1]?.split(", ").map(Number) ?? [];
        const before = earlier
          .map((i) => byIndex.get(i))
          .filter((o): o is Outcome => o !== undefined)
          .map(
            (o) =>
              `\n      before it on the connection: case ${o.c.index} ${o.c.protocol} ${o.c.method.kind} ${o.c.mutation} (${o.c.request.body.byteLength} bytes) -> ${o.code}`,
          )
          .join("");
        report.push(
          `${key}: ${list.length}x, e.g. case ${smallest.c.index} -> ${smallest.detail.replace(/\s+/g, " ").slice(0, 200)}${before}\n    ${reproduction(smallest.c, address).replaceAll("\n", "\n    ")}`,
        );
      }
      const justified = outcomes.filter((o) => o.verdict === "justified");
      console.log(
        `Unavailable/DeadlineExceeded with a reason (${justified.length}): ${[...new Set(justified.map((o) => `${o.c.protocol} ${o.c.mutation} -> ${o.code} (${o.c.justification})`))].join("; ") || "none"}`,
      );
      console.log(`\nFAILURES (${failing.length} requests in ${groups.size} groups):\n${report.join("\n") || "none"}\n`);

      const unexpected = cluster.nodes.flatMap((n) =>
        n.output
          .join("")
          .split("\n")
          .filter((line) => /uncaught exception|unexpected error/.test(line))
          .map((line) => `${n.id}: ${line.slice(0, 300)}`),
      );
      console.log(
        `node log lines about unexpected errors: ${unexpected.length}${unexpected.length ? `\n${[...new Set(unexpected.map((l) => l.replace(/"time":"[^"]*",?/, "")))].slice(0, 20).join("\n")}` : ""}`,
      );

      // Still serving: every process up, the control key readable and writable through every
      // node (over HTTP/2 Connect, gRPC and gRPC-Web), and every node's health SERVING.
      for (const [id, index] of exits) {
        const tail = cluster
          .node(id)
          .output.join("")
          .split("\n")
          .filter((line) => !line.startsWith('{"time"') || /error|uncaught/i.test(line))
          .slice(-25);
        console.log(`NODE ${id} EXITED (noticed after case ${index}); last output:\n${tail.join("\n")}`);
      }
      expect([...exits].map(([id, index]) => `${id} exited (noticed after case ${index})`)).toEqual([]);
      expect(cluster.nodes.map((n) => [n.id, n.running])).toEqual(cluster.nodes.map((n) => [n.id, true]));
      const decoder = new TextDecoder();
      let expected = controlValue;
      for (const [i, node] of cluster.nodes.entries()) {
        const client = cluster.client(node.id, { protocol: (["connect", "grpc", "grpc-web"] as const)[i % 3] });
        const read = await client.get(CONTROL_KEY);
        expect(read?.values.map((v) => decoder.decode(v))).toEqual([expected]);
        expected = `control value ${SEED} written via ${node.id}`;
        await client.put(CONTROL_KEY, expected, { context: read!.context });
        expect((await client.get(CONTROL_KEY))?.values.map((v) => decoder.decode(v))).toEqual([expected]);
        const health = createClient(Health, createGrpcTransport({ baseUrl: `http://${node.address}` }));
        expect((await health.check({ service: "" })).status).toBe(ServingStatus.SERVING);
        expect((await health.check({ service: "dynamo.v1.KVService" })).status).toBe(ServingStatus.SERVING);
      }

      expect(report).toEqual([]);
    },
    DURATION_MS + 90_000,
  );
});
