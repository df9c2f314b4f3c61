// The node's HTTP request handler: connect-node's router (Connect, gRPC and gRPC-Web for every
// service), with three corrections for input that no well-behaved client sends, so that bad
// input always gets a client-error code:
//
// - A request body that is not valid protobuf, or an envelope flagged compressed without an
//   encoding, is answered by @connectrpc/connect with `internal` (500), as if the server were
//   at fault. The handler rewrites exactly those answers to `invalid_argument`, in each
//   protocol's own framing (Connect unary JSON, Connect end-stream, gRPC trailers, gRPC-Web
//   trailer frame).
// - Timeout headers beyond what any request may use (`connect-timeout-ms`, `grpc-timeout`) are
//   clamped: Node's timers overflow past 2^31 - 1 ms, and connect would fire such a deadline
//   at once. Every request is bounded by `maxTimeoutMs` anyway (deadlineFor).
// - A Connect GET whose query holds percent-escapes that are not UTF-8 is refused: the URL
//   parser would silently turn them into U+FFFD, and two different keys into one. So is one
//   whose base64 message is not base64 (connect answers it with `internal`).
// - In Connect JSON requests, a bytes field (a value, a context) must be valid base64: the
//   protobuf JSON parser reads garbage such as "====" as empty bytes, which would turn a write
//   with a mangled context into a blind one.
// JSON bodies are decoded as strict UTF-8 (invalid bytes in a key would otherwise be replaced
// the same way).
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { Code, ConnectError, type ConnectRouter, type ConnectRouterOptions, createConnectRouter } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import { ScalarType } from "@bufbuild/protobuf";
import type { UniversalHandler, UniversalServerRequest, UniversalServerResponse } from "@connectrpc/connect/protocol";
import type { Logger } from "../observability/log.js";
import { ENVELOPE_HEADER_BYTES, envelope, FLAG_END_STREAM } from "./envelope.js";

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;
/** What a fallback writes with: the methods both HTTP versions' responses share. */
export interface FallbackResponse {
  writeHead(statusCode: number, headers?: http.OutgoingHttpHeaders): unknown;
  end(body?: string | Uint8Array): unknown;
  /** "close": the response is done, or its connection (HTTP/2: its stream) went away first. */
  once(event: "close", listener: () => void): unknown;
}

export interface RpcHandlerOptions extends ConnectRouterOptions {
  routes(router: ConnectRouter): void;
  /** Requests for paths no service serves. */
  fallback(req: NodeRequest, res: FallbackResponse): void;
  /** The longest deadline a request may carry; longer timeout headers are clamped to it. */
  readonly maxTimeoutMs: number;
  /** JSON bodies up to this size have their bytes fields checked; larger ones are refused by the read limits anyway. */
  readonly maxCheckedJsonBytes: number;
  readonly log: Logger;
}

/** What the listener calls for each request. */
export type RequestHandler = (req: NodeRequest, res: NodeResponse) => void;

export function createRpcHandler(options: RpcHandlerOptions): RequestHandler {
  const strictJson = { ...options.jsonOptions, textDecoder: new TextDecoder("utf-8", { fatal: true }) };
  // gzip and brotli for clients that compress (connectNodeAdapter's defaults; a bare router has
  // none, and a gzip client got Unimplemented). Peers never compress: their transports accept no
  // encoding (peers.ts), so neither side compresses between nodes.
  const router = createConnectRouter({ acceptCompression: [compressionGzip, compressionBrotli], ...options, jsonOptions: strictJson });
  options.routes(router);
  const paths = new Map<string, UniversalHandler>();
  for (const handler of router.handlers) paths.set(handler.requestPath, withInputCorrections(handler, options));
  return (req, res) => {
    const handler = paths.get(req.url?.split("?", 2)[0] ?? "");
    if (!handler) {
      options.fallback(req, res as FallbackResponse);
      return;
    }
    const uReq = universalRequestFromNodeRequest(req, res, undefined, undefined);
    handler(uReq)
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((reason: unknown) => {
        // The client went away or the response could not be written: nothing left to answer.
        if (ConnectError.from(reason).code === Code.Aborted) return;
        options.log.warn("could not write a response", { method: `${handler.service.typeName}/${handler.method.name}`, error: String(reason) });
      });
  };
}

function withInputCorrections(handler: UniversalHandler, options: RpcHandlerOptions): UniversalHandler {
  const bytesFields = handler.method.input.fields.filter((f) => f.fieldKind === "scalar" && f.scalar === ScalarType.BYTES).flatMap((f) => [f.name, f.jsonName]);
  const corrected = async (req: UniversalServerRequest): Promise<UniversalServerResponse> => {
    clampTimeoutHeaders(req.header, options.maxTimeoutMs);
    if (req.method === "GET") {
      const problem = queryProblem(req.url);
      if (problem) return connectUnaryError(new ConnectError(problem, Code.InvalidArgument));
    } else if (bytesFields.length > 0 && isPlainJson(req)) {
      const checked = await checkBytesFields(req, bytesFields, options.maxCheckedJsonBytes);
      if ("status" in checked) return checked;
      req = checked;
    }
    return correctInputErrors(await handler(req));
  };
  return Object.assign(corrected, {
    method: handler.method,
    service: handler.service,
    requestPath: handler.requestPath,
    protocolNames: handler.protocolNames,
    allowedMethods: handler.allowedMethods,
    supportedContentType: handler.supportedContentType,
  });
}

// --- timeouts --------------------------------------------------------------------------------

const GRPC_TIMEOUT = /^(\d{1,8})([HMSmun])$/;
const GRPC_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/** Caps well-formed timeout headers at `maxMs`; malformed ones are left for connect to refuse. */
export function clampTimeoutHeaders(header: Headers, maxMs: number): void {
  const connectTimeout = header.get("connect-timeout-ms");
  if (connectTimeout !== null && /^\d{1,10}$/.test(connectTimeout) && Number(connectTimeout) > maxMs) {
    header.set("connect-timeout-ms", String(maxMs));
  }
  const grpcTimeout = header.get("grpc-timeout");
  const match = grpcTimeout === null ? null : GRPC_TIMEOUT.exec(grpcTimeout);
  if (match && Number(match[1]) * GRPC_UNIT_MS[match[2]!]! > maxMs) header.set("grpc-timeout", `${maxMs}m`);
}

/** Why a Connect GET query can't be taken as it is, if it can't. */
function queryProblem(url: string): string | undefined {
  const query = url.indexOf("?");
  if (query === -1) return undefined;
  let params: URLSearchParams;
  try {
    decodeURIComponent(url.slice(query + 1).replaceAll("+", " "));
    params = new URLSearchParams(url.slice(query + 1));
  } catch {
    return "the query string holds percent-escapes that are not UTF-8";
  }
  if (params.get("base64") === "1" && !isBase64(params.get("message") ?? "")) return "the message parameter is not base64";
  return undefined;
}

/** Standard or URL-safe base64, padded or not (as proto3 JSON accepts), and nothing else. */
export function isBase64(text: string): boolean {
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(text)) return false;
  const unpadded = text.replace(/=+$/, "");
  if (unpadded.length % 4 === 1) return false;
  return unpadded.length === text.length || text.length % 4 === 0;
}

function isPlainJson(req: UniversalServerRequest): boolean {
  const type = req.header.get("content-type") ?? "";
  const encoding = req.header.get("content-encoding");
  return /^application\/json(;|$)/i.test(type) && (encoding === null || encoding === "identity");
}

/** Reads a JSON body (up to `maxBytes`) and refuses it when a bytes field is not base64. */
async function checkBytesFields(
  req: UniversalServerRequest,
  fields: readonly string[],
  maxBytes: number,
): Promise<UniversalServerRequest | UniversalServerResponse> {
  if (req.body === undefined || typeof (req.body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] !== "function") return req;
  const it = (req.body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const next = await it.next();
    if (next.done) break;
    chunks.push(next.value);
    size += next.value.byteLength;
    // Too large to be valid anyway: hand it on as it is, connect refuses it by its read limit.
    if (size > maxBytes) return { ...req, body: concatWithRest(chunks, it) };
  }
  const body = Buffer.concat(chunks);
  const message = parseJson(body);
  if (message !== null && typeof message === "object") {
    for (const field of fields) {
      const value = (message as Record<string, unknown>)[field];
      if (typeof value === "string" && !isBase64(value)) {
        return connectUnaryError(new ConnectError(`field ${field} is not valid base64`, Code.InvalidArgument));
      }
    }
  }
  return { ...req, body: single(body) };
}

function concatWithRest(chunks: Uint8Array[], rest: AsyncIterator<Uint8Array>): AsyncIterable<Uint8Array> {
  return (async function* () {
    yield* chunks;
    for (let next = await rest.next(); !next.done; next = await rest.next()) yield next.value;
  })();
}

// --- answers to malformed input ----------------------------------------------------------------

/** connect's codes for input it could not parse that it reports as `internal`. */
export function isMisreportedInputError(code: string | number, message: string): boolean {
  const internal = code === Code.Internal || code === "internal" || code === "13";
  return internal && /^(parse binary: |invalid envelope|received compressed envelope|decompression failed)/.test(message);
}

const GRPC_WEB_TRAILER_FLAG = 0x80;

async function correctInputErrors(res: UniversalServerResponse): Promise<UniversalServerResponse> {
  const contentType = res.header?.get("content-type") ?? "";
  if (contentType.startsWith("application/grpc-web"))
    return { ...res, body: mapChunks(res.body, (chunk) => correctEnvelope(chunk, GRPC_WEB_TRAILER_FLAG, correctGrpcWebTrailer)) };
  if (contentType.startsWith("application/grpc")) {
    if (res.trailer) correctGrpcTrailer(res.trailer);
    return {
      ...res,
      body: mapChunks(
        res.body,
        (chunk) => chunk,
        () => res.trailer && correctGrpcTrailer(res.trailer),
      ),
    };
  }
  if (contentType.startsWith("application/connect"))
    return { ...res, body: mapChunks(res.body, (chunk) => correctEnvelope(chunk, FLAG_END_STREAM, correctEndStream)) };
  if (res.status === 500 && contentType.startsWith("application/json") && res.body !== undefined) return correctConnectUnary(res);
  return res;
}

async function correctConnectUnary(res: UniversalServerResponse): Promise<UniversalServerResponse> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) chunks.push(chunk);
  const body = Buffer.concat(chunks);
  const error = parseJson(body) as { code?: string; message?: string } | undefined;
  if (!error || !isMisreportedInputError(error.code ?? "", error.message ?? "")) return { ...res, body: single(body) };
  const fixed = new ConnectError(error.message ?? "", Code.InvalidArgument);
  return connectUnaryError(fixed, res.header);
}

function connectUnaryError(error: ConnectError, header = new Headers()): UniversalServerResponse {
  const body = Buffer.from(JSON.stringify({ code: codeName(error.code), message: error.rawMessage }));
  const headers = new Headers(header);
  headers.set("content-type", "application/json");
  headers.set("content-length", String(body.byteLength));
  return { status: error.code === Code.InvalidArgument ? 400 : 500, header: headers, body: single(body) };
}

function correctGrpcTrailer(trailer: Headers): void {
  const status = trailer.get("grpc-status");
  const message = decodeGrpcMessage(trailer.get("grpc-message") ?? "");
  if (status !== null && isMisreportedInputError(status, message)) trailer.set("grpc-status", String(Code.InvalidArgument));
}

/** A gRPC-Web trailer frame: HTTP/1-style header lines. */
function correctGrpcWebTrailer(data: Uint8Array): Uint8Array | undefined {
  const text = Buffer.from(data).toString("latin1");
  const status = /^grpc-status: ?(\d+)\r?$/im.exec(text)?.[1];
  const message = decodeGrpcMessage(/^grpc-message: ?(.*?)\r?$/im.exec(text)?.[1] ?? "");
  if (status === undefined || !isMisreportedInputError(status, message)) return undefined;
  return Buffer.from(text.replace(/^grpc-status: ?\d+/im, `grpc-status: ${Code.InvalidArgument}`), "latin1");
}

/** A Connect end-stream message: JSON with an optional error. */
function correctEndStream(data: Uint8Array): Uint8Array | undefined {
  const end = parseJson(Buffer.from(data)) as { error?: { code?: string; message?: string } } | undefined;
  if (!end?.error || !isMisreportedInputError(end.error.code ?? "", end.error.message ?? "")) return undefined;
  return Buffer.from(JSON.stringify({ ...end, error: { ...end.error, code: codeName(Code.InvalidArgument) } }));
}

/** Rewrites `chunk` when it is exactly one envelope with `flag` whose data `fix` changes. */
function correctEnvelope(chunk: Uint8Array, flag: number, fix: (data: Uint8Array) => Uint8Array | undefined): Uint8Array {
  if (chunk.byteLength < ENVELOPE_HEADER_BYTES || ((chunk[0] as number) & flag) === 0) return chunk;
  const length = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).readUInt32BE(1);
  if (ENVELOPE_HEADER_BYTES + length !== chunk.byteLength) return chunk;
  const fixed = fix(chunk.subarray(ENVELOPE_HEADER_BYTES));
  if (fixed === undefined) return chunk;
  return envelope(chunk[0] as number, fixed);
}

function mapChunks(body: UniversalServerResponse["body"], map: (chunk: Uint8Array) => Uint8Array, atEnd?: () => void): UniversalServerResponse["body"] {
  if (body === undefined) {
    atEnd?.();
    return body;
  }
  return (async function* () {
    for await (const chunk of body) yield map(chunk);
    atEnd?.();
  })();
}

function single(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  return (async function* () {
    yield bytes;
  })();
}

function parseJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch {
    return undefined;
  }
}

function decodeGrpcMessage(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** Connect's snake_case code names ("invalid_argument"). */
function codeName(code: Code): string {
  return Code[code]!.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}
