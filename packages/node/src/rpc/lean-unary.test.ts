// The lean unary path against connect-node: the same requests, over real HTTP/1.1 and HTTP/2
// connections, to a server that tries the lean path first and to one that serves everything
// through connect-node (with the node's input corrections, rpc-handler.ts). Status, the headers
// that carry meaning, trailers and bodies must be the same, for well-formed calls, errors with
// metadata, timeouts, and hostile bodies (fuzzed).
import * as http from "node:http";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { create, toBinary } from "@bufbuild/protobuf";
import { DeleteRequestSchema, GetRequestSchema, PutRequestSchema } from "@dynamo-ts/proto";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonLogger } from "../observability/log.js";
import { KeyNotFound, type KvOperations } from "./kv-operations.js";
import { leanUnaryHandler } from "./lean-unary.js";
import { createRpcHandler, type RequestHandler } from "./rpc-handler.js";
import { registerKvService } from "./services.js";

const READ_MAX_BYTES = 4096;
const MAX_TIMEOUT_MS = 600_000;
const log = jsonLogger("test", () => {});

/** A KV service whose answers show what it was given: the key, the transport timeout, headers. */
const kv: KvOperations = {
  async get(req, call) {
    // NotFound as the KV operations answer it (a value, not a thrown error), and as a thrown error.
    if (req.key === "missing") return new KeyNotFound(req.key);
    if (req.key === "missing-thrown") throw new ConnectError(`key not found: "${req.key}"`, Code.NotFound);
    if (req.key === "boom") throw new Error("an unexpected failure");
    if (req.key === "") throw new ConnectError("key must not be empty", Code.InvalidArgument);
    const timeout = call.timeoutMs();
    return {
      siblings: [{ value: Buffer.from(`value of ${req.key}`) }, { value: new Uint8Array([0, 255]), contentType: "text/plain" }],
      // The remaining time, in 100 ms steps: both paths count it from the request's arrival.
      context: Buffer.from(`r=${req.r ?? "-"} t=${timeout === undefined ? "-" : Math.ceil(timeout / 100) * 100} x=${call.header("x-test") ?? "-"}`),
    };
  },
  async put(req) {
    if (req.key === "declined") {
      const err = new ConnectError("not a replica", Code.Unavailable);
      err.metadata.set("x-dynamo-forward-outcome", "declined");
      err.metadata.set("content-type", "must/not-pass");
      throw err;
    }
    if (req.value.byteLength > 100) throw new ConnectError(`value is ${req.value.byteLength} bytes, the limit is 100`, Code.InvalidArgument);
    return { context: Buffer.concat([Buffer.from(req.key), Buffer.from(req.value), Buffer.from(req.context)]) };
  },
  async delete(req) {
    if (req.key === "late") throw new ConnectError("deadline passed", Code.DeadlineExceeded);
    return {};
  },
};

function connectOnly(): RequestHandler {
  return createRpcHandler({
    routes: (router) => registerKvService(router, kv, READ_MAX_BYTES),
    maxTimeoutMs: MAX_TIMEOUT_MS,
    maxCheckedJsonBytes: READ_MAX_BYTES,
    log,
    fallback: (_req, res) => {
      res.writeHead(404);
      res.end();
    },
  });
}

function leanFirst(): RequestHandler {
  const lean = leanUnaryHandler({ kv, readMaxBytes: READ_MAX_BYTES, maxTimeoutMs: MAX_TIMEOUT_MS, observe: () => {}, log });
  const fallback = connectOnly();
  return (req, res) => lean(req, res) || fallback(req, res);
}

interface Servers {
  h1: http.Server;
  h2: http2.Http2Server;
  h1Port: number;
  h2Port: number;
  session: http2.ClientHttp2Session;
}

async function startServers(handler: RequestHandler): Promise<Servers> {
  const h1 = http.createServer(handler);
  const h2 = http2.createServer(handler);
  await Promise.all([new Promise<void>((r) => h1.listen(0, "127.0.0.1", r)), new Promise<void>((r) => h2.listen(0, "127.0.0.1", r))]);
  const h2Port = (h2.address() as AddressInfo).port;
  const session = http2.connect(`http://127.0.0.1:${h2Port}`);
  return { h1, h2, h1Port: (h1.address() as AddressInfo).port, h2Port, session };
}

async function stopServers(s: Servers): Promise<void> {
  s.session.close();
  await Promise.all([new Promise((r) => s.h1.close(r)), new Promise((r) => s.h2.close(r))]);
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  trailers: Record<string, string>;
  body: string;
}

/** Headers compared between the two paths; the rest (date, connection, keep-alive) are the transport's. */
const COMPARED_HEADERS = ["content-type", "content-length", "x-dynamo-forward-outcome", "grpc-status", "grpc-message"];

function pick(headers: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of COMPARED_HEADERS) if (headers[name] !== undefined) out[name] = String(headers[name]);
  return out;
}

interface Call {
  path: string;
  headers: Record<string, string>;
  body: Uint8Array;
}

function sendH1(port: number, call: Call): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, method: "POST", path: call.path, headers: { ...call.headers, "content-length": String(call.body.byteLength) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode!, headers: pick(res.headers), trailers: pick(res.trailers), body: Buffer.concat(chunks).toString("base64") }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(call.body);
  });
}

function sendH2(session: http2.ClientHttp2Session, call: Call): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": call.path, ...call.headers });
    let status = 0;
    let headers: Record<string, string> = {};
    let trailers: Record<string, string> = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      headers = pick(h);
    });
    stream.on("trailers", (t) => (trailers = pick(t)));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => resolve({ status, headers, trailers, body: Buffer.concat(chunks).toString("base64") }));
    stream.on("error", reject);
    stream.end(call.body);
  });
}

function envelope(message: Uint8Array, flags = 0): Uint8Array {
  const out = Buffer.alloc(5 + message.byteLength);
  out[0] = flags;
  out.writeUInt32BE(message.byteLength, 1);
  out.set(message, 5);
  return out;
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const GET = "/dynamo.v1.KVService/Get";
const PUT = "/dynamo.v1.KVService/Put";
const DELETE = "/dynamo.v1.KVService/Delete";
const getBinary = (key: string, r?: number) => toBinary(GetRequestSchema, create(GetRequestSchema, { key, r }));
const putBinary = (key: string, value: Uint8Array) => toBinary(PutRequestSchema, create(PutRequestSchema, { key, value }));

/** Connect unary calls, for HTTP/1.1 and HTTP/2. */
const CONNECT_CALLS: Record<string, Call> = {
  "json get": { path: GET, headers: { "content-type": "application/json", "x-test": "seen" }, body: json({ key: "a", r: 2 }) },
  "json get, charset": { path: GET, headers: { "content-type": "application/json; charset=utf-8" }, body: json({ key: "a" }) },
  "json get, upper-case type": { path: GET, headers: { "content-type": "Application/JSON" }, body: json({ key: "a" }) },
  "json get, unknown field": { path: GET, headers: { "content-type": "application/json" }, body: json({ key: "a", extra: 1 }) },
  "json get, timeout": { path: GET, headers: { "content-type": "application/json", "connect-timeout-ms": "1500" }, body: json({ key: "a" }) },
  "json get, huge timeout": { path: GET, headers: { "content-type": "application/json", "connect-timeout-ms": "9999999999" }, body: json({ key: "a" }) },
  "json get, bad timeout": { path: GET, headers: { "content-type": "application/json", "connect-timeout-ms": "soon" }, body: json({ key: "a" }) },
  "json get, not found": { path: GET, headers: { "content-type": "application/json" }, body: json({ key: "missing" }) },
  "json get, not found (thrown)": { path: GET, headers: { "content-type": "application/json" }, body: json({ key: "missing-thrown" }) },
  "json get, unexpected failure": { path: GET, headers: { "content-type": "application/json" }, body: json({ key: "boom" }) },
  "json get, empty key": { path: GET, headers: { "content-type": "application/json" }, body: json({ key: "" }) },
  "json get, truncated": { path: GET, headers: { "content-type": "application/json" }, body: Buffer.from('{"key":') },
  "json get, empty body": { path: GET, headers: { "content-type": "application/json" }, body: Buffer.alloc(0) },
  "json get, not an object": { path: GET, headers: { "content-type": "application/json" }, body: json([1, 2]) },
  "json get, wrong field type": { path: GET, headers: { "content-type": "application/json" }, body: json({ key: 5 }) },
  "json get, r out of range": { path: GET, headers: { "content-type": "application/json" }, body: json({ key: "a", r: -1 }) },
  "json get, invalid UTF-8": {
    path: GET,
    headers: { "content-type": "application/json" },
    body: Buffer.from([0x7b, 0x22, 0x6b, 0x65, 0x79, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]),
  },
  "json put": { path: PUT, headers: { "content-type": "application/json" }, body: json({ key: "k", value: Buffer.from("v").toString("base64"), context: "" }) },
  "json put, url-safe base64": { path: PUT, headers: { "content-type": "application/json" }, body: json({ key: "k", value: "-_8" }) },
  "json put, bad base64": { path: PUT, headers: { "content-type": "application/json" }, body: json({ key: "k", value: "====" }) },
  "json put, too large a value": {
    path: PUT,
    headers: { "content-type": "application/json" },
    body: json({ key: "k", value: Buffer.alloc(200).toString("base64") }),
  },
  "json put, over readMaxBytes": {
    path: PUT,
    headers: { "content-type": "application/json" },
    body: json({ key: "k", value: Buffer.alloc(4000).toString("base64") }),
  },
  "json put, declined with metadata": { path: PUT, headers: { "content-type": "application/json" }, body: json({ key: "declined" }) },
  "json delete, deadline": { path: DELETE, headers: { "content-type": "application/json" }, body: json({ key: "late" }) },
  "json delete": { path: DELETE, headers: { "content-type": "application/json" }, body: json({ key: "k" }) },
  "proto get": { path: GET, headers: { "content-type": "application/proto" }, body: getBinary("a", 1) },
  "proto get, garbage": { path: GET, headers: { "content-type": "application/proto" }, body: Buffer.from("garbage") },
  "proto put": { path: PUT, headers: { "content-type": "application/proto" }, body: putBinary("k", Buffer.from("value")) },
  "proto get, not found": { path: GET, headers: { "content-type": "application/proto" }, body: getBinary("missing") },
  "proto delete": {
    path: DELETE,
    headers: { "content-type": "application/proto" },
    body: toBinary(DeleteRequestSchema, create(DeleteRequestSchema, { key: "k" })),
  },
  "declined content type": { path: GET, headers: { "content-type": "text/plain" }, body: json({ key: "a" }) },
  "gzip request (served by connect-node)": { path: GET, headers: { "content-type": "application/json", "content-encoding": "br" }, body: json({ key: "a" }) },
};

/** gRPC unary calls (HTTP/2 only). */
const GRPC_CALLS: Record<string, Call> = {
  "grpc get": { path: GET, headers: { "content-type": "application/grpc", te: "trailers" }, body: envelope(getBinary("a", 2)) },
  "grpc+proto get, timeout": { path: GET, headers: { "content-type": "application/grpc+proto", "grpc-timeout": "250m" }, body: envelope(getBinary("a")) },
  "grpc get, seconds timeout": { path: GET, headers: { "content-type": "application/grpc", "grpc-timeout": "3S" }, body: envelope(getBinary("a")) },
  "grpc get, huge timeout": { path: GET, headers: { "content-type": "application/grpc", "grpc-timeout": "99999999H" }, body: envelope(getBinary("a")) },
  "grpc get, bad timeout": { path: GET, headers: { "content-type": "application/grpc", "grpc-timeout": "12x" }, body: envelope(getBinary("a")) },
  "grpc get, not found": { path: GET, headers: { "content-type": "application/grpc" }, body: envelope(getBinary("missing")) },
  "grpc get, not found (thrown)": { path: GET, headers: { "content-type": "application/grpc" }, body: envelope(getBinary("missing-thrown")) },
  "grpc get, unexpected failure": { path: GET, headers: { "content-type": "application/grpc" }, body: envelope(getBinary("boom")) },
  "grpc put, declined with metadata": { path: PUT, headers: { "content-type": "application/grpc" }, body: envelope(putBinary("declined", new Uint8Array())) },
  "grpc put": { path: PUT, headers: { "content-type": "application/grpc" }, body: envelope(putBinary("k", Buffer.from("v"))) },
  "grpc get, no message": { path: GET, headers: { "content-type": "application/grpc" }, body: new Uint8Array() },
  "grpc get, two messages": {
    path: GET,
    headers: { "content-type": "application/grpc" },
    body: Buffer.concat([envelope(getBinary("a")), envelope(getBinary("b"))]),
  },
  "grpc get, incomplete envelope": { path: GET, headers: { "content-type": "application/grpc" }, body: envelope(getBinary("a")).slice(0, 7) },
  "grpc get, short prefix": { path: GET, headers: { "content-type": "application/grpc" }, body: new Uint8Array([0, 0]) },
  "grpc get, compressed flag without encoding": { path: GET, headers: { "content-type": "application/grpc" }, body: envelope(getBinary("a"), 1) },
  "grpc get, garbage message": { path: GET, headers: { "content-type": "application/grpc" }, body: envelope(Buffer.from("garbage")) },
  "grpc get, over readMaxBytes": { path: GET, headers: { "content-type": "application/grpc" }, body: envelope(getBinary("a".repeat(5000))) },
  "grpc get, declared over readMaxBytes": { path: GET, headers: { "content-type": "application/grpc" }, body: Buffer.from([0, 0, 1, 0, 0, 1, 2, 3]) },
  "grpc+json (served by connect-node)": { path: GET, headers: { "content-type": "application/grpc+json" }, body: envelope(json({ key: "a" })) },
  "grpc gzip (served by connect-node)": { path: GET, headers: { "content-type": "application/grpc", "grpc-encoding": "gzip" }, body: envelope(getBinary("a")) },
};

describe("the lean unary path answers as connect-node does", () => {
  let lean: Servers;
  let connect: Servers;
  beforeAll(async () => {
    [lean, connect] = await Promise.all([startServers(leanFirst()), startServers(connectOnly())]);
  });
  afterAll(async () => {
    await Promise.all([stopServers(lean), stopServers(connect)]);
  });

  for (const [name, call] of Object.entries(CONNECT_CALLS)) {
    it(`Connect over HTTP/1.1: ${name}`, async () => {
      expect(await sendH1(lean.h1Port, call)).toEqual(await sendH1(connect.h1Port, call));
    });
    it(`Connect over HTTP/2: ${name}`, async () => {
      expect(await sendH2(lean.session, call)).toEqual(await sendH2(connect.session, call));
    });
  }
  for (const [name, call] of Object.entries(GRPC_CALLS)) {
    it(`gRPC: ${name}`, async () => {
      expect(await sendH2(lean.session, call)).toEqual(await sendH2(connect.session, call));
    });
  }

  it("served a timeout header and a forwarded header through to the service (not a test of equal silence)", async () => {
    const answer = await sendH2(lean.session, GRPC_CALLS["grpc+proto get, timeout"]!);
    expect(answer.trailers["grpc-status"]).toBe("0");
    const viaJson = await sendH1(lean.h1Port, CONNECT_CALLS["json get"]!);
    expect(JSON.parse(Buffer.from(viaJson.body, "base64").toString()).context).toBe(Buffer.from("r=2 t=- x=seen").toString("base64"));
  });

  it("answers a key without a value with NotFound and the key in the message (not a test of equal silence)", async () => {
    const viaJson = await sendH1(lean.h1Port, CONNECT_CALLS["json get, not found"]!);
    expect(viaJson.status).toBe(404);
    expect(JSON.parse(Buffer.from(viaJson.body, "base64").toString())).toEqual({ code: "not_found", message: 'key not found: "missing"' });
    const viaGrpc = await sendH2(lean.session, GRPC_CALLS["grpc get, not found"]!);
    expect(viaGrpc.trailers["grpc-status"]).toBe(String(Code.NotFound));
    expect(decodeURIComponent(String(viaGrpc.trailers["grpc-message"]))).toBe('key not found: "missing"');
  });

  it("answers fuzzed bodies alike, in every protocol", async () => {
    const types = ["application/json", "application/proto", "application/grpc"];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(GET, PUT, DELETE),
        fc.constantFrom(...types),
        fc.oneof(
          fc.uint8Array({ maxLength: 64 }),
          fc.json().map((j) => Buffer.from(j)),
          fc.record({ key: fc.string(), value: fc.string(), r: fc.integer(), w: fc.integer() }, { requiredKeys: [] }).map(json),
          fc.uint8Array({ maxLength: 64 }).map((m) => envelope(m)),
        ),
        async (path, type, body) => {
          const call = { path, headers: { "content-type": type }, body };
          expect(await sendH2(lean.session, call)).toEqual(await sendH2(connect.session, call));
          if (type !== "application/grpc") expect(await sendH1(lean.h1Port, call)).toEqual(await sendH1(connect.h1Port, call));
        },
      ),
      { numRuns: 150, seed: 17 },
    );
  });
});
