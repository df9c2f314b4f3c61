// A lean calling side for unary calls over the Connect protocol (binary, HTTP/2): the request
// is written straight onto a stream of the node's HTTP/2 session and the answer parsed when it
// ends. connect-es's own unary path builds a chain of async iterables per call and, when a call
// succeeds, aborts its internal AbortController without a reason, which makes a DOMException
// and then a ConnectError, each with a captured stack trace: in a profile of dynamo-bench those
// two constructors alone were 9% of the client's CPU, and connect-es + connect-node 27%.
//
// Behaviour is connect-es's: the same request headers, the response validated, trailers
// demultiplexed and errors parsed by connect-es's own protocol-connect functions, socket and
// HTTP/2 errors mapped to the same codes with the node error as `cause` (the client's
// failover rules read it), deadlines and cancellation ending the stream the same way.
// lean-transport.test.ts runs every case through this and through connect-node's transport
// and expects the same outcome. Two deliberate differences: a fractional deadline is sent as
// whole milliseconds, as the protocol requires (connect-es sends the fraction, which connect
// servers refuse with InvalidArgument); a stream the server refused unprocessed
// (REFUSED_STREAM, e.g. opened as the node began shutting down) is Unavailable, not Internal.
// Streaming calls go to connect-node's transport unchanged.
import type { ClientHttp2Stream, IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http2";
import { constants as h2 } from "node:http2";
import { create, type DescMessage, type DescMethodUnary, fromBinary, isMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { appendHeaders, Code, ConnectError, type Transport, type UnaryResponse } from "@connectrpc/connect";
import { getAbortSignalReason } from "@connectrpc/connect/protocol";
import { contentTypeUnaryProto, errorFromJsonBytes, protocolVersion, trailerDemux, validateResponse } from "@connectrpc/connect/protocol-connect";
import type { Http2SessionManager } from "@connectrpc/connect-node";
import { VERSION } from "./version.js";

export const USER_AGENT = `dynamo-ts-client/${VERSION}`;

/**
 * A Transport whose unary calls take the lean path over `sessionManager` (the session the
 * `fallback` transport uses too); streaming calls go to `fallback`.
 */
export function leanUnaryTransport(fallback: Transport, sessionManager: Http2SessionManager): Transport {
  return {
    unary: (method, signal, timeoutMs, header, input) => callUnary(sessionManager, method, signal, timeoutMs, header, input),
    stream: (method, signal, timeoutMs, header, input, contextValues) => fallback.stream(method, signal, timeoutMs, header, input, contextValues),
  };
}

/** A lean unary call being made: its encoded request and headers, and settling it once. */
export interface UnaryCall {
  readonly body: Uint8Array;
  readonly headers: OutgoingHttpHeaders;
  /** True once the call resolved or failed. */
  readonly settled: boolean;
  /** Marks the call settled (it is about to resolve): stops its timer and signal listener. */
  finish(): void;
  /** Fails the call unless it is settled: finish(), `abandon(err)`, then the rejection. */
  fail(err: ConnectError): void;
}

/**
 * What both lean calling sides (HTTP/2 here, HTTP/1.1 in lean-http1.ts) do before sending:
 * connect-es's checks of the signal, the request's encoding and headers, the deadline's timer
 * and the caller's signal, both failing the call through `abandon` (which ends the exchange on
 * the wire). Undefined, with `reject` called, when the call ends before it is sent.
 */
export function startUnaryCall<I extends DescMessage>(
  method: DescMethodUnary<I, DescMessage>,
  signal: AbortSignal | undefined,
  requestedTimeoutMs: number | undefined,
  header: Parameters<Transport["unary"]>[3],
  input: MessageInitShape<I>,
  reject: (err: ConnectError) => void,
  abandon: (err: ConnectError) => void,
): UnaryCall | undefined {
  // connect-es: a timeout of zero or less means none.
  const timeoutMs = requestedTimeoutMs !== undefined && requestedTimeoutMs > 0 ? requestedTimeoutMs : undefined;
  if (signal?.aborted) {
    reject(ConnectError.from(getAbortSignalReason(signal), Code.Canceled));
    return undefined;
  }
  let body: Uint8Array;
  try {
    body = toBinary(method.input, isMessage(input, method.input) ? input : create(method.input, input));
  } catch (err) {
    reject(new ConnectError(`serialize binary: ${err instanceof Error ? err.message : String(err)}`, Code.Internal));
    return undefined;
  }
  const headers: OutgoingHttpHeaders = {};
  if (header !== undefined) new Headers(header).forEach((value, name) => (headers[name] = value));
  // The header is a positive integer (Connect protocol); connect-es would send a fraction as
  // it is, which servers refuse. Rounded up: the caller's own timer still fires at timeoutMs.
  if (timeoutMs !== undefined) headers["connect-timeout-ms"] = String(Math.ceil(timeoutMs));
  headers["content-type"] = contentTypeUnaryProto;
  headers["connect-protocol-version"] = protocolVersion;
  headers["user-agent"] ??= USER_AGENT;

  let timer: NodeJS.Timeout | undefined;
  const onAbort = () => call.fail(ConnectError.from(getAbortSignalReason(signal!), Code.Canceled));
  const call = {
    body,
    headers,
    settled: false,
    finish() {
      call.settled = true;
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    },
    fail(err: ConnectError) {
      if (call.settled) return;
      call.finish();
      abandon(err);
      reject(err);
    },
  };
  if (timeoutMs !== undefined) timer = setTimeout(() => call.fail(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeoutMs);
  signal?.addEventListener("abort", onAbort);
  return call;
}

function callUnary<I extends DescMessage, O extends DescMessage>(
  sessionManager: Http2SessionManager,
  method: DescMethodUnary<I, O>,
  signal: AbortSignal | undefined,
  requestedTimeoutMs: number | undefined,
  header: Parameters<Transport["unary"]>[3],
  input: MessageInitShape<I>,
): Promise<UnaryResponse<I, O>> {
  return new Promise<UnaryResponse<I, O>>((resolve, reject) => {
    let stream: ClientHttp2Stream | undefined;
    const call = startUnaryCall(method, signal, requestedTimeoutMs, header, input, reject, (err) => {
      // As connect-node: a cancelled call resets its stream with CANCEL, any other failure with INTERNAL_ERROR.
      if (stream !== undefined && !stream.closed) stream.close(err.code === Code.Canceled ? h2.NGHTTP2_CANCEL : h2.NGHTTP2_INTERNAL_ERROR);
    });
    if (call === undefined) return;
    // fail() uses no `this`: it can be taken off the call.
    const { body, headers, fail } = call;

    sessionManager.request("POST", `/${method.parent.typeName}/${method.name}`, headers, {}).then(
      (opened) => {
        if (call.settled) {
          opened.close(h2.NGHTTP2_CANCEL);
          return;
        }
        stream = opened;
        let status = 0;
        let responseHeaders: IncomingHttpHeaders | undefined;
        const chunks: Buffer[] = [];
        let ended = false;
        const onResponse = (h: IncomingHttpHeaders) => {
          responseHeaders = h;
          status = Number(h[":status"]);
        };
        const onData = (chunk: Buffer) => {
          chunks.push(chunk);
          sessionManager.notifyResponseByteRead(opened);
        };
        // A server that answers before reading the whole request resets the stream with NO_ERROR
        // once its answer is sent (RFC 9113, 8.1; Node's does), so "close" still follows "end".
        const onEnd = () => (ended = true);
        const onError = (err: Error) => {
          // The answer may already be buffered when the request's write failed after the end.
          if (opened.writableEnded && nodeErrorCodes(err).includes("ERR_STREAM_WRITE_AFTER_END")) return;
          // A stream the node refused unprocessed (it is shutting down, or at its stream limit)
          // is Unavailable, as connect-es maps REFUSED_STREAM; connect-node reports Node's
          // stream error first, as Internal. The node error stays the cause (refusedStream()).
          if (opened.rstCode === h2.NGHTTP2_REFUSED_STREAM) {
            const refused = connectErrorFromResetCode(opened.rstCode)!;
            refused.cause = err;
            return fail(refused);
          }
          fail(connectErrorFromNodeReason(err));
        };
        // The answer is read at "close", which follows "end" at once: a stream reset after
        // the response ended is still a failure, as connect-node reports it.
        const onClose = () => {
          // Nothing is emitted after "close". What a request's stream reaches outlives young-
          // generation GCs until the next full one: ClientHttp2Session.request() wraps a
          // function bound to the stream with AsyncResource.bind(), and what such a function
          // reaches is promoted (a micro-benchmark: 47% of allocation promoted, none without
          // bind()). Without these listeners that is the stream, not also this call's closures,
          // promise, answer and caller: dynamo-bench's promoted share 18% → 9%
          // (docs/performance.md, ninth pass).
          opened.off("response", onResponse).off("data", onData).off("end", onEnd).off("error", onError).off("close", onClose);
          if (call.settled) return;
          const reset = connectErrorFromResetCode(opened.rstCode);
          if (reset) return fail(reset);
          if (!ended || responseHeaders === undefined) return fail(new ConnectError("the HTTP/2 stream closed before the response ended", Code.Unavailable));
          settleWithAnswer(call, method, status, responseHeaders, chunks, resolve);
        };
        opened.on("response", onResponse).on("data", onData).on("end", onEnd).on("error", onError).on("close", onClose);
        opened.end(body);
      },
      (err: unknown) => fail(connectErrorFromNodeReason(err)),
    );
  });
}

/**
 * Settles `call` with the answer its response's `chunks` make: resolves with the response, or
 * fails with the error the answer carries. Both lean calling sides end a call here.
 */
export function settleWithAnswer<I extends DescMessage, O extends DescMessage>(
  call: UnaryCall,
  method: DescMethodUnary<I, O>,
  status: number,
  headers: IncomingHttpHeaders | undefined,
  chunks: readonly Buffer[],
  resolve: (response: UnaryResponse<I, O>) => void,
): void {
  try {
    const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    // A plain Uint8Array view, as connect-es hands out: bytes fields are then Uint8Arrays, not Buffers.
    const response = answer(method, status, headers, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    call.finish();
    resolve(response);
  } catch (err) {
    call.fail(ConnectError.from(err));
  }
}

/** The response of a finished stream, or the error it carries (connect-es's rules). */
function answer<I extends DescMessage, O extends DescMessage>(
  method: DescMethodUnary<I, O>,
  status: number,
  nodeHeaders: IncomingHttpHeaders | undefined,
  body: Uint8Array,
): UnaryResponse<I, O> {
  const all = new Headers();
  if (nodeHeaders !== undefined) {
    for (const [name, value] of Object.entries(nodeHeaders)) {
      if (name.startsWith(":") || value === undefined) continue;
      if (Array.isArray(value)) for (const v of value) all.append(name, v);
      else all.append(name, String(value));
    }
  }
  const encoding = all.get("content-encoding");
  // No Accept-Encoding was sent, so a compressed answer is one this client cannot read.
  if (encoding !== null && encoding.toLowerCase() !== "identity") throw new ConnectError(`unsupported response encoding "${encoding}"`, Code.Internal, all);
  const { isUnaryError, unaryError } = validateResponse("unary", true, status, all);
  const [header, trailer] = trailerDemux(all);
  if (isUnaryError) throw errorFromJsonBytes(body, appendHeaders(header, trailer), unaryError!);
  let message;
  try {
    message = fromBinary(method.output, body);
  } catch (err) {
    throw new ConnectError(`parse binary: ${err instanceof Error ? err.message : String(err)}`, Code.Internal);
  }
  return { stream: false, service: method.parent, method, header, message, trailer };
}

function nodeErrorCodes(reason: unknown): string[] {
  const codes: string[] = [];
  const seen = new Set<unknown>();
  for (let e = reason; e instanceof Error && !seen.has(e); e = e.cause) {
    seen.add(e);
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
  }
  return codes;
}

/** connect-node's mapping of a Node.js error to a code; the node error stays the cause. */
export function connectErrorFromNodeReason(reason: unknown): ConnectError {
  const codes = nodeErrorCodes(reason);
  let code = Code.Internal;
  if (codes.includes("ERR_STREAM_WRITE_AFTER_END")) code = Code.Aborted;
  else if (codes.some((c) => c === "ERR_STREAM_DESTROYED" || c === "ERR_HTTP2_INVALID_STREAM" || c === "ECONNRESET")) code = Code.Aborted;
  else if (codes.some((c) => c === "ETIMEDOUT" || c === "ENOTFOUND" || c === "EAI_AGAIN" || c === "ECONNREFUSED")) code = Code.Unavailable;
  const err = ConnectError.from(reason, code);
  if (err !== reason) err.cause = reason;
  return err;
}

/** connect-node's mapping of an HTTP/2 RST_STREAM code; undefined for those it maps to nothing (NO_ERROR, STREAM_CLOSED). */
function connectErrorFromResetCode(rstCode: number | undefined): ConnectError | undefined {
  const mapped = rstCode === undefined ? undefined : RESET_CODES.get(rstCode);
  if (mapped === undefined) return undefined;
  return new ConnectError(`http/2 stream closed with error code ${mapped[0]} (0x${rstCode!.toString(16)})`, mapped[1]);
}

const RESET_CODES = new Map<number, readonly [string, Code]>([
  [h2.NGHTTP2_PROTOCOL_ERROR, ["PROTOCOL_ERROR", Code.Internal]],
  [h2.NGHTTP2_INTERNAL_ERROR, ["INTERNAL_ERROR", Code.Internal]],
  [h2.NGHTTP2_FLOW_CONTROL_ERROR, ["FLOW_CONTROL_ERROR", Code.Internal]],
  [h2.NGHTTP2_SETTINGS_TIMEOUT, ["SETTINGS_TIMEOUT", Code.Internal]],
  [h2.NGHTTP2_FRAME_SIZE_ERROR, ["FRAME_SIZE_ERROR", Code.Internal]],
  [h2.NGHTTP2_COMPRESSION_ERROR, ["COMPRESSION_ERROR", Code.Internal]],
  [h2.NGHTTP2_CONNECT_ERROR, ["CONNECT_ERROR", Code.Internal]],
  [h2.NGHTTP2_REFUSED_STREAM, ["REFUSED_STREAM", Code.Unavailable]],
  [h2.NGHTTP2_CANCEL, ["CANCEL", Code.Canceled]],
  [h2.NGHTTP2_ENHANCE_YOUR_CALM, ["ENHANCE_YOUR_CALM", Code.ResourceExhausted]],
  [h2.NGHTTP2_INADEQUATE_SECURITY, ["INADEQUATE_SECURITY", Code.PermissionDenied]],
  [h2.NGHTTP2_HTTP_1_1_REQUIRED, ["HTTP_1_1_REQUIRED", Code.PermissionDenied]],
]);
