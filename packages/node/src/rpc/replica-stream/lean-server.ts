// ReplicaService.Stream served straight off the HTTP/2 stream: the Connect streaming protocol
// (application/connect+proto, uncompressed) framed and parsed here, without connect-node's chain
// of async iterables per message (split, decompress, parse, invoke, serialize, join, adapt), which
// profiles of the write path put at several percent of a node's CPU. The ops themselves run
// through ReplicaStreamSession, as on connect-node's path.
//
// It takes only what other nodes send: POST over HTTP/2, exactly that content type, no
// compression, no timeout header, and the cluster secret. Anything else is declined before the
// body is read, and connect-node serves it (or refuses it: PermissionDenied without the secret).
// replica-stream.test.ts runs the same stream scenarios through both paths.
import type * as http2 from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { CLUSTER_SECRET_HEADER, type StreamRequest, StreamRequestSchema } from "@dynamo-ts/proto";
import type { LeanHandler } from "../lean-unary.js";
import { encodeStreamResponse } from "./codec.js";
import { ENVELOPE_HEADER_BYTES, EnvelopeReader, envelope, FLAG_COMPRESSED, FLAG_END_STREAM, framed, STREAM_CONTENT_TYPE } from "../envelope.js";
import { type ForwardedWriteCoordinator, type ReplicaStore, ReplicaStreamSession } from "./server.js";

export const REPLICA_STREAM_PATH = "/dynamo.v1.ReplicaService/Stream";

export interface LeanReplicaStreamOptions {
  readonly replica: ReplicaStore;
  /** Takes the client writes other nodes forward on the stream. */
  readonly coordinate?: ForwardedWriteCoordinator;
  /** Whether a header value is the cluster secret (constant time). */
  readonly isClusterSecret: (given: string | undefined) => boolean;
  /** The largest message a peer may send (the internal services' readMaxBytes). */
  readonly readMaxBytes: number;
  /** Fires when the node begins to stop: the stream takes no new ops and ends. */
  readonly draining: AbortSignal;
  /** Told of each stream served and each message received (the number of ops in it). */
  readonly observer?: { streamOpened(): void; messageReceived(ops: number): void };
}

export function leanReplicaStreamHandler(options: LeanReplicaStreamOptions): LeanHandler {
  return (req, res) => {
    if (req.method !== "POST" || req.url !== REPLICA_STREAM_PATH || req.httpVersionMajor !== 2) return false;
    const headers = req.headers;
    if (headers["content-type"] !== STREAM_CONTENT_TYPE) return false;
    const encoding = headers["connect-content-encoding"];
    if ((encoding !== undefined && encoding !== "identity") || headers["connect-timeout-ms"] !== undefined) return false;
    const secret = headers[CLUSTER_SECRET_HEADER];
    if (typeof secret !== "string" || !options.isClusterSecret(secret)) return false;
    serve(options, req as http2.Http2ServerRequest, res as http2.Http2ServerResponse);
    return true;
  };
}

function serve(options: LeanReplicaStreamOptions, req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): void {
  options.observer?.streamOpened();
  let gone = false;
  const session = new ReplicaStreamSession(
    options.replica,
    (batch) => {
      if (!gone) res.write(framed(0, encodeStreamResponse(batch.results ?? [], ENVELOPE_HEADER_BYTES)));
    },
    () => {
      if (gone || res.writableEnded) return;
      const error = reader.error;
      const end = error ? { error: { code: codeToString(error.code), message: error.rawMessage } } : {};
      res.end(envelope(FLAG_END_STREAM, Buffer.from(JSON.stringify(end))));
    },
    options.coordinate,
  );
  const reader = new EnvelopeReader(options.readMaxBytes, (flags, data) => {
    if ((flags & FLAG_COMPRESSED) !== 0)
      return reader.fail(new ConnectError("received compressed envelope, but do not know how to decompress", Code.InvalidArgument));
    if ((flags & FLAG_END_STREAM) !== 0)
      return reader.fail(new ConnectError("protocol error: unexpected end-stream message from the client", Code.InvalidArgument));
    let message: StreamRequest;
    try {
      message = fromBinary(StreamRequestSchema, data);
    } catch (err) {
      return reader.fail(new ConnectError(`parse binary: ${err instanceof Error ? err.message : String(err)}`, Code.InvalidArgument));
    }
    options.observer?.messageReceived(message.ops.length);
    session.take(message);
  });
  const onDrain = () => session.endInput();
  if (options.draining.aborted) onDrain();
  else options.draining.addEventListener("abort", onDrain, { once: true });
  req.on("data", (chunk: Buffer) => {
    reader.push(chunk);
    if (reader.error) {
      // Stop taking ops; the ones taken are answered, then the error ends the stream.
      session.endInput();
      req.pause();
    }
  });
  req.once("end", () => {
    if (!reader.error && reader.partialBytes > 0) reader.fail(new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument));
    session.endInput();
  });
  req.once("error", () => session.endInput());
  res.once("close", () => {
    options.draining.removeEventListener("abort", onDrain);
    if (!res.writableFinished) {
      gone = true;
      session.abandon();
    } else session.endInput();
  });
  res.writeHead(200, { "content-type": STREAM_CONTENT_TYPE });
}
