// The lean unary path: KVService Get, Put and Delete served straight off node:http / node:http2,
// without connect-node's universal request and response objects, async iterables, per-call
// AbortController and Headers. It speaks, per their specifications, exactly:
//
// - the Connect unary protocol: POST, Content-Type application/json (optionally with
//   charset=utf-8) or application/proto, over HTTP/1.1 or HTTP/2; `connect-timeout-ms`;
// - gRPC unary over HTTP/2: Content-Type application/grpc or application/grpc+proto, one
//   length-prefixed message, `grpc-timeout`, the status in trailers.
//
// Anything else — another method or content type, a compressed request (`content-encoding`,
// `grpc-encoding` other than identity), a malformed timeout header, gRPC over HTTP/1.1, gRPC-Web,
// a Connect GET, every other service and all streaming — is declined before the body is read
// and served by connect-node (rpc-handler.ts), which also produces the protocol errors for such
// requests. The answers are the same as connect-node's with this node's input corrections
// (rpc-handler.ts) for every request the lean path takes: lean-unary.test.ts sends the same
// requests through both and compares status, headers, trailers and bodies. One difference, allowed
// by both protocols: responses are never compressed (connect-node compresses bodies of 1 KiB or
// more when the client accepts gzip).
import type * as http from "node:http";
import type * as http2 from "node:http2";
import type { Readable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, codeToString } from "@connectrpc/connect/protocol-connect";
import { create, type DescMessage, fromBinary, fromJson, type JsonValue, type MessageInitShape, ScalarType, toBinary, toJsonString } from "@bufbuild/protobuf";
import { KVService } from "@dynamo-ts/proto";
import type { Logger } from "../observability/log.js";
import { readBody } from "./kv-http.js";
import { type KvCall, KeyNotFound, type KvOperations } from "./kv-operations.js";
import { isBase64 } from "./rpc-handler.js";
import { ENVELOPE_HEADER_BYTES, envelope } from "./envelope.js";

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

/** Serves the request and returns true, or returns false without touching it. */
export type LeanHandler = (req: NodeRequest, res: NodeResponse) => boolean;

export interface LeanUnaryOptions {
  readonly kv: KvOperations;
  /** The largest request message (the public services' readMaxBytes). */
  readonly readMaxBytes: number;
  /** Timeout headers beyond this are clamped to it (as rpc-handler.ts does). */
  readonly maxTimeoutMs: number;
  /** Told of each answered call: the method name, its Connect code name ("ok" on success), seconds taken. */
  readonly observe: (method: string, code: string, seconds: number) => void;
  readonly log: Logger;
}

type Protocol = "connect-json" | "connect-proto" | "grpc";

interface Method {
  readonly name: string;
  readonly input: DescMessage;
  readonly output: DescMessage;
  /** JSON names (proto and camelCase) of the input's bytes fields: checked to be base64. */
  readonly bytesFields: readonly string[];
  run(req: never, call: KvCall): Promise<unknown>;
}

const JSON_TYPES = new Set([
  "application/json",
  "application/json;charset=utf-8",
  "application/json; charset=utf-8",
  "application/json;charset=utf8",
  "application/json; charset=utf8",
]);
const GRPC_TYPES = new Set(["application/grpc", "application/grpc+proto"]);
const CONNECT_TIMEOUT = /^\d{1,10}$/;
const GRPC_TIMEOUT = /^(\d{1,8})([HMSmun])$/;
const GRPC_UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };
const JSON_READ = { ignoreUnknownFields: true };
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

export function leanUnaryHandler(options: LeanUnaryOptions): LeanHandler {
  const { kv } = options;
  const methods = new Map<string, Method>();
  for (const [name, run] of [
    ["Get", kv.get],
    ["Put", kv.put],
    ["Delete", kv.delete],
  ] as const) {
    const desc = KVService.method[name === "Get" ? "get" : name === "Put" ? "put" : "delete"];
    const bytesFields = desc.input.fields.filter((f) => f.fieldKind === "scalar" && f.scalar === ScalarType.BYTES).flatMap((f) => [f.name, f.jsonName]);
    methods.set(`/${KVService.typeName}/${name}`, { name, input: desc.input, output: desc.output, bytesFields, run: run as Method["run"] });
  }

  return (req, res) => {
    if (req.method !== "POST") return false;
    const method = methods.get(req.url ?? "");
    if (method === undefined) return false;
    const headers = req.headers;
    const protocol = protocolOf(req);
    if (protocol === undefined) return false;
    const timeoutHeader = protocol === "grpc" ? headers["grpc-timeout"] : headers["connect-timeout-ms"];
    // The transport deadline counts from the request's arrival, as connect's does.
    let deadline: number | undefined;
    if (timeoutHeader !== undefined) {
      const timeoutMs = parseTimeout(protocol, timeoutHeader);
      if (timeoutMs === undefined) return false;
      deadline = performance.now() + Math.min(timeoutMs, options.maxTimeoutMs);
    }
    const call: KvCall = {
      header: (name) => {
        const value = headers[name];
        return Array.isArray(value) ? value.join(", ") : value;
      },
      timeoutMs: () => (deadline === undefined ? undefined : deadline - performance.now()),
    };
    void serve(options, method, protocol, req, res, call);
    return true;
  };
}

function protocolOf(req: NodeRequest): Protocol | undefined {
  const headers = req.headers;
  const type = headers["content-type"]?.toLowerCase();
  if (type === undefined) return undefined;
  if (GRPC_TYPES.has(type)) {
    const encoding = headers["grpc-encoding"];
    return req.httpVersionMajor === 2 && (encoding === undefined || encoding === "identity") ? "grpc" : undefined;
  }
  const encoding = headers["content-encoding"];
  if (encoding !== undefined && encoding !== "identity") return undefined;
  if (type === "application/proto") return "connect-proto";
  return JSON_TYPES.has(type) ? "connect-json" : undefined;
}

function parseTimeout(protocol: Protocol, header: string | string[]): number | undefined {
  if (typeof header !== "string") return undefined;
  if (protocol !== "grpc") return CONNECT_TIMEOUT.test(header) ? Number(header) : undefined;
  const match = GRPC_TIMEOUT.exec(header);
  return match ? Number(match[1]) * GRPC_UNIT_MS[match[2]!]! : undefined;
}

async function serve(options: LeanUnaryOptions, method: Method, protocol: Protocol, req: NodeRequest, res: NodeResponse, call: KvCall): Promise<void> {
  const started = performance.now();
  let code = "ok";
  try {
    let body: Uint8Array;
    try {
      const input = decodeInput(method, protocol, await readRequest(req, protocol, options.readMaxBytes));
      const output = await method.run(input as never, call);
      if (output instanceof KeyNotFound) {
        code = codeToString(output.code);
        answerError(res, protocol, output.code, output.message, undefined);
        return;
      }
      body = encodeOutput(method.output, protocol, output as MessageInitShape<DescMessage>);
    } catch (err) {
      const error = asConnectError(err, method, options.log);
      code = codeToString(error.code);
      answerError(res, protocol, error.code, error.rawMessage, error.metadata);
      return;
    }
    answer(res, protocol, body);
  } catch (err) {
    // The response could not be written (the client went away): nothing left to answer.
    code = "canceled";
    if (!res.headersSent) options.log.warn("could not write a response", { method: `${KVService.typeName}/${method.name}`, error: String(err) });
  } finally {
    options.observe(method.name, code, (performance.now() - started) / 1000);
  }
}

function asConnectError(err: unknown, method: Method, log: Logger): ConnectError {
  if (err instanceof ConnectError) return err;
  // As logUnexpectedErrors (request-scope.ts): the client sees "internal error", the log the cause.
  log.error("request failed with an unexpected error", {
    method: `${KVService.typeName}/${method.name}`,
    error: err instanceof Error ? (err.stack ?? err.message) : String(err),
  });
  return new ConnectError("internal error", Code.Internal, undefined, undefined, err);
}

/** connect's words: the size when it is known before reading (Content-Length, an envelope's length). */
function tooLarge(size: number | undefined, limit: number): ConnectError {
  return new ConnectError(`message size ${size === undefined ? "" : `${size} `}is larger than configured readMaxBytes ${limit}`, Code.ResourceExhausted);
}

/** The length a gRPC envelope declares, once its 5-byte prefix has arrived. */
function declaredLength(received: readonly Buffer[]): number | undefined {
  const head = Buffer.concat(received);
  return head.byteLength >= ENVELOPE_HEADER_BYTES ? head.readUInt32BE(1) : undefined;
}

/** The request's message bytes: the whole body (Connect), or the one enveloped message (gRPC). */
async function readRequest(req: NodeRequest, protocol: Protocol, readMaxBytes: number): Promise<Uint8Array> {
  const declared = req.headers["content-length"];
  if (protocol !== "grpc") {
    if (declared !== undefined && /^\d+$/.test(declared) && Number(declared) > readMaxBytes) throw tooLarge(Number(declared), readMaxBytes);
    const body = await readBody(req as Readable, readMaxBytes, (limit) => tooLarge(undefined, limit));
    if (declared !== undefined && /^\d+$/.test(declared) && Number(declared) !== body.byteLength) {
      throw new ConnectError(`protocol error: promised ${declared} bytes, received ${body.byteLength}`, Code.InvalidArgument);
    }
    return body;
  }
  const body = await readBody(req as Readable, readMaxBytes + ENVELOPE_HEADER_BYTES, (_limit, received) => tooLarge(declaredLength(received), readMaxBytes));
  if (body.byteLength === 0) throw new ConnectError("protocol error: missing input message for unary method", Code.Unimplemented);
  if (body.byteLength < ENVELOPE_HEADER_BYTES) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
  const flags = body[0]!;
  const length = body.readUInt32BE(1);
  if (length > readMaxBytes) throw tooLarge(length, readMaxBytes);
  if (ENVELOPE_HEADER_BYTES + length > body.byteLength) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
  if (ENVELOPE_HEADER_BYTES + length < body.byteLength)
    throw new ConnectError("protocol error: received extra input message for unary method", Code.Unimplemented);
  // A compressed message without grpc-encoding (no encoding was negotiated): connect reports it as
  // internal, rpc-handler.ts corrects that to invalid_argument.
  if ((flags & 0b1) !== 0) throw new ConnectError("received compressed envelope, but do not know how to decompress", Code.InvalidArgument);
  return body.subarray(ENVELOPE_HEADER_BYTES);
}

function decodeInput(method: Method, protocol: Protocol, bytes: Uint8Array): unknown {
  if (protocol !== "connect-json") {
    try {
      return fromBinary(method.input, bytes);
    } catch (err) {
      throw new ConnectError(`parse binary: ${err instanceof Error ? err.message : String(err)}`, Code.InvalidArgument);
    }
  }
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch (err) {
    throw new ConnectError((err as Error).message, Code.InvalidArgument, undefined, undefined, err);
  }
  let json: JsonValue;
  try {
    json = JSON.parse(text) as JsonValue;
  } catch (err) {
    // protobuf-es's words for the same failure (fromJsonString).
    throw new ConnectError(
      `cannot decode message ${method.input.typeName} from JSON: ${(err as Error).message}`,
      Code.InvalidArgument,
      undefined,
      undefined,
      err,
    );
  }
  if (json !== null && typeof json === "object" && !Array.isArray(json)) {
    for (const field of method.bytesFields) {
      const value = json[field];
      if (typeof value === "string" && !isBase64(value)) throw new ConnectError(`field ${field} is not valid base64`, Code.InvalidArgument);
    }
  }
  try {
    return fromJson(method.input, json, JSON_READ);
  } catch (err) {
    throw ConnectError.from(err, Code.InvalidArgument);
  }
}

function encodeOutput(desc: DescMessage, protocol: Protocol, output: MessageInitShape<DescMessage>): Uint8Array {
  // The KV methods return message initializers: complete them as connect does.
  const message = create(desc, output);
  if (protocol === "connect-json") return Buffer.from(toJsonString(desc, message));
  const bytes = toBinary(desc, message);
  if (protocol === "connect-proto") return bytes;
  return envelope(0, bytes);
}

function answer(res: NodeResponse, protocol: Protocol, body: Uint8Array): void {
  if (protocol === "grpc") {
    const h2 = res as http2.Http2ServerResponse;
    h2.writeHead(200, { "content-type": "application/grpc+proto" });
    h2.addTrailers({ "grpc-status": "0" });
    h2.end(body);
    return;
  }
  (res as http.ServerResponse).writeHead(200, {
    "content-type": protocol === "connect-json" ? "application/json" : "application/proto",
    "content-length": String(body.byteLength),
  });
  res.end(body);
}

/**
 * Connect's error answer (a JSON body, the metadata as headers) or gRPC's (status and metadata in
 * trailers), for an error's code, message (without connect's "[code]" prefix) and metadata.
 */
function answerError(res: NodeResponse, protocol: Protocol, code: Code, rawMessage: string, errorMetadata: Headers | undefined): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const metadata: Record<string, string> = {};
  errorMetadata?.forEach((value, name) => {
    if (!PROTOCOL_HEADERS.has(name)) metadata[name] = value;
  });
  if (protocol === "grpc") {
    const h2 = res as http2.Http2ServerResponse;
    h2.writeHead(200, { "content-type": "application/grpc+proto" });
    h2.addTrailers({
      ...metadata,
      "grpc-status": String(code),
      ...(rawMessage === "" ? {} : { "grpc-message": encodeURIComponent(rawMessage) }),
    });
    h2.end();
    return;
  }
  const json: Record<string, string> = { code: codeToString(code) };
  if (rawMessage !== "") json.message = rawMessage;
  const body = Buffer.from(JSON.stringify(json));
  (res as http.ServerResponse).writeHead(codeToHttpStatus(code), {
    ...metadata,
    "content-type": "application/json",
    "content-length": String(body.byteLength),
  });
  res.end(body);
}

/** Headers an error's metadata may not set (connect's mergeNonProtocolHeaders leaves them out too). */
const PROTOCOL_HEADERS = new Set([
  "content-type",
  "content-length",
  "content-encoding",
  "host",
  "user-agent",
  "trailer",
  "date",
  "accept-encoding",
  "trailer-",
  "connect-content-encoding",
  "connect-accept-encoding",
  "connect-timeout-ms",
  "connect-protocol-version",
  "grpc-encoding",
  "grpc-accept-encoding",
  "grpc-timeout",
  "grpc-status",
  "grpc-message",
  "grpc-status-details-bin",
]);
