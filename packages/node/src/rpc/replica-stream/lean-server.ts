// ReplicaService.Stream served straight off the HTTP/2 stream: the Connect streaming protocol
// (application/connect+proto, uncompressed) framed and parsed here, without connect-node's chain
// of async iterables per message (split, decompress, parse, invoke, serialize, join, adapt), which
// profiles of the write path put at several percent of a node's CPU. The ops themselves run
// through serveReplicaStream, as on connect-node's path.
//
// It takes only what other nodes send: POST over HTTP/2, exactly that content type, no
// compression, no timeout header, and the cluster secret. Anything else is declined before the
// body is read, and connect-node serves it (or refuses it: PermissionDenied without the secret).
// replica-stream.test.ts runs the same stream scenarios through both paths.
import type * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { CLUSTER_SECRET_HEADER, type StreamRequest, StreamRequestSchema, StreamResponseSchema } from "@dynamo-ts/proto";
import { AsyncQueue } from "../../util/async-queue.js";
import type { LeanHandler } from "../lean-unary.js";
import { type ReplicaStore, serveReplicaStream } from "./server.js";

export const REPLICA_STREAM_PATH = "/dynamo.v1.ReplicaService/Stream";
const CONTENT_TYPE = "application/connect+proto";
const ENVELOPE_HEADER_BYTES = 5;
const FLAG_COMPRESSED = 0b01;
const FLAG_END_STREAM = 0b10;

export interface LeanReplicaStreamOptions {
  readonly replica: ReplicaStore;
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
    if (headers["content-type"] !== CONTENT_TYPE) return false;
    const encoding = headers["connect-content-encoding"];
    if ((encoding !== undefined && encoding !== "identity") || headers["connect-timeout-ms"] !== undefined) return false;
    const secret = headers[CLUSTER_SECRET_HEADER];
    if (typeof secret !== "string" || !options.isClusterSecret(secret)) return false;
    void serve(options, req as http2.Http2ServerRequest, res as http2.Http2ServerResponse);
    return true;
  };
}

/** Splits the request body into envelopes as it arrives; the first protocol error ends the input. */
class EnvelopeReader {
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  error: ConnectError | undefined;

  constructor(
    private readonly readMaxBytes: number,
    private readonly deliver: (message: StreamRequest) => void,
  ) {}

  push(chunk: Buffer): void {
    if (this.error) return;
    this.buffered.push(chunk);
    this.bufferedBytes += chunk.byteLength;
    while (this.bufferedBytes >= ENVELOPE_HEADER_BYTES) {
      const head = this.buffered.length === 1 ? this.buffered[0]! : this.flatten();
      const flags = head[0]!;
      const length = head.readUInt32BE(1);
      if (length > this.readMaxBytes)
        return this.fail(new ConnectError(`message size ${length} is larger than configured readMaxBytes ${this.readMaxBytes}`, Code.ResourceExhausted));
      if (this.bufferedBytes < ENVELOPE_HEADER_BYTES + length) return;
      const all = this.flatten();
      const data = all.subarray(ENVELOPE_HEADER_BYTES, ENVELOPE_HEADER_BYTES + length);
      const rest = all.subarray(ENVELOPE_HEADER_BYTES + length);
      this.buffered = rest.byteLength > 0 ? [rest] : [];
      this.bufferedBytes = rest.byteLength;
      if ((flags & FLAG_COMPRESSED) !== 0)
        return this.fail(new ConnectError("received compressed envelope, but do not know how to decompress", Code.InvalidArgument));
      if ((flags & FLAG_END_STREAM) !== 0)
        return this.fail(new ConnectError("protocol error: unexpected end-stream message from the client", Code.InvalidArgument));
      let message: StreamRequest;
      try {
        message = fromBinary(StreamRequestSchema, data);
      } catch (err) {
        return this.fail(new ConnectError(`parse binary: ${err instanceof Error ? err.message : String(err)}`, Code.InvalidArgument));
      }
      this.deliver(message);
    }
  }

  /** At the end of the body: what is left must be nothing. */
  end(): void {
    if (!this.error && this.bufferedBytes > 0) this.fail(new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument));
  }

  private flatten(): Buffer {
    const all = Buffer.concat(this.buffered, this.bufferedBytes);
    this.buffered = [all];
    return all;
  }

  private fail(error: ConnectError): void {
    this.error = error;
    this.buffered = [];
    this.bufferedBytes = 0;
  }
}

function envelope(flags: number, data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(ENVELOPE_HEADER_BYTES + data.byteLength);
  out[0] = flags;
  out.writeUInt32BE(data.byteLength, 1);
  out.set(data, ENVELOPE_HEADER_BYTES);
  return out;
}

async function serve(options: LeanReplicaStreamOptions, req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): Promise<void> {
  const requests = new AsyncQueue<StreamRequest>();
  options.observer?.streamOpened();
  const reader = new EnvelopeReader(options.readMaxBytes, (message) => {
    options.observer?.messageReceived(message.ops.length);
    if (!requests.ended) requests.push(message);
  });
  const gone = new AbortController();
  const endInput = () => requests.end();
  req.on("data", (chunk: Buffer) => {
    reader.push(chunk);
    if (reader.error) {
      // Stop taking ops; the ones taken are answered, then the error ends the stream.
      endInput();
      req.pause();
    }
  });
  req.once("end", () => {
    reader.end();
    endInput();
  });
  req.once("error", endInput);
  res.once("close", () => {
    endInput();
    if (!res.writableFinished) gone.abort();
  });
  res.writeHead(200, { "content-type": CONTENT_TYPE });
  try {
    for await (const batch of serveReplicaStream(options.replica, requests, gone.signal, options.draining)) {
      if (gone.signal.aborted) break;
      const ok = res.write(envelope(0, toBinary(StreamResponseSchema, create(StreamResponseSchema, batch))));
      if (!ok && !gone.signal.aborted) await drainedOrClosed(res);
    }
  } finally {
    if (!gone.signal.aborted && !res.writableEnded) {
      const error = reader.error;
      const end = error ? { error: { code: codeToString(error.code), message: error.rawMessage } } : {};
      res.end(envelope(FLAG_END_STREAM, Buffer.from(JSON.stringify(end))));
    }
  }
}

/** Waits for room in the stream's buffer (or its end), leaving no listener behind either way. */
function drainedOrClosed(res: http2.Http2ServerResponse): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.once("drain", done);
    res.once("close", done);
  });
}
