// The calling side of ReplicaService.Stream written straight onto an HTTP/2 stream: each batch
// of ops is one Connect envelope (application/connect+proto, uncompressed), and answers are
// parsed from the response as they arrive. connect-es's client does the same through a chain of
// async iterables per message and a promise per write, which profiles of the write path put at
// several percent of a node's CPU. It speaks to either server (connect-node's or lean-server.ts);
// replica-stream.test.ts runs every stream scenario with both clients against both servers.
import { constants as h2, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeFromHttpStatus, endStreamFromJson } from "@connectrpc/connect/protocol-connect";
import { type StreamResponse, StreamResponseSchema } from "@dynamo-ts/proto";
import { streamFailure } from "../unreachable.js";
import type { StreamOpener } from "./client.js";
import { encodeStreamRequest } from "./codec.js";
import { ENVELOPE_HEADER_BYTES, EnvelopeReader, FLAG_COMPRESSED, framed, FLAG_END_STREAM, STREAM_CONTENT_TYPE } from "../envelope.js";
import { REPLICA_STREAM_PATH } from "./lean-server.js";

/** Where the lean client gets its HTTP/2 streams: the peer's bulk session. */
export interface RawStreamSource {
  /** Opens a stream on the session to the peer (connecting first if need be). */
  request(path: string, headers: OutgoingHttpHeaders): Promise<ClientHttp2Stream>;
  /** Told of each chunk of response read on a stream (it keeps the session's keep-alive quiet). */
  responseRead?(stream: ClientHttp2Stream): void;
  /** Told when this side's own session refused a response on `stream` (ENHANCE_YOUR_CALM): the session is spent. */
  refusedBySession?(stream: ClientHttp2Stream): void;
}

export interface LeanStreamOptions {
  readonly source: RawStreamSource;
  readonly peer: string;
  /** Sent with the call (the cluster secret). */
  readonly headers: Readonly<Record<string, string>>;
  /** The largest answer message taken from the peer. */
  readonly readMaxBytes: number;
}

export function leanStreamOpener(options: LeanStreamOptions): StreamOpener {
  const { source, peer } = options;
  const requestHeaders: OutgoingHttpHeaders = { ...options.headers, "content-type": STREAM_CONTENT_TYPE, "connect-protocol-version": "1" };
  return (events) => {
    let stream: ClientHttp2Stream | undefined;
    let queued: Buffer[] | undefined = [];
    let over = false;
    let endStreamSeen = false;
    /** Ends the call (once): drops what is queued and resets the stream; false if it was over already. */
    const stop = (): boolean => {
      if (over) return false;
      over = true;
      queued = undefined;
      if (stream && !stream.closed) stream.close(h2.NGHTTP2_CANCEL);
      return true;
    };
    const finish = (err: ConnectError) => {
      if (stop()) events.end(err);
    };
    const broken = (what: string) => new ConnectError(`replica stream to ${peer} ${what}`, Code.Unavailable);
    const reader = new EnvelopeReader(options.readMaxBytes, (flags, data) => {
      if ((flags & FLAG_COMPRESSED) !== 0) return reader.fail(broken("sent a compressed message, which was not asked for"));
      if ((flags & FLAG_END_STREAM) !== 0) {
        endStreamSeen = true;
        let error: ConnectError | undefined;
        try {
          error = endStreamFromJson(data).error;
        } catch (err) {
          error = broken(`sent an end-stream message that does not parse: ${(err as Error).message}`);
        }
        return finish(error ? streamFailure(error, peer, "replica stream") : broken("ended"));
      }
      let message: StreamResponse;
      try {
        message = fromBinary(StreamResponseSchema, data);
      } catch (err) {
        return reader.fail(broken(`sent a message that does not parse: ${(err as Error).message}`));
      }
      if (!over) events.message(message);
    });

    const onResponse = (headers: IncomingHttpHeaders) => {
      const status = Number(headers[":status"] ?? 0);
      if (status !== 200) {
        const code = codeFromHttpStatus(status);
        return finish(streamFailure(new ConnectError(`HTTP ${status}`, code), peer, "replica stream"));
      }
      if (headers["content-type"] !== STREAM_CONTENT_TYPE) finish(broken(`answered with content type ${JSON.stringify(headers["content-type"])}`));
    };

    source.request(REPLICA_STREAM_PATH, requestHeaders).then(
      (opened) => {
        if (over) {
          opened.close(h2.NGHTTP2_CANCEL);
          return;
        }
        stream = opened;
        opened.on("response", onResponse);
        opened.on("data", (chunk: Buffer) => {
          source.responseRead?.(opened);
          reader.push(chunk);
          if (reader.error) finish(streamFailure(reader.error, peer, "replica stream"));
        });
        opened.on("end", () => {
          if (!endStreamSeen) finish(broken(reader.partialBytes > 0 ? "ended inside a message" : "ended without an end-stream message"));
        });
        opened.on("error", (err: Error) => {
          if (err.message.includes("NGHTTP2_ENHANCE_YOUR_CALM")) source.refusedBySession?.(opened);
          finish(broken(`failed: ${err.message}`));
        });
        opened.on("close", () => {
          if (opened.rstCode === h2.NGHTTP2_ENHANCE_YOUR_CALM) source.refusedBySession?.(opened);
          finish(broken(opened.rstCode ? `was reset (HTTP/2 error code ${opened.rstCode})` : "closed"));
        });
        for (const message of queued ?? []) opened.write(message);
        queued = undefined;
      },
      (err: unknown) => finish(broken(`could not be opened: ${err instanceof Error ? err.message : String(err)}`)),
    );

    return {
      send(batch) {
        if (over) return;
        const message = framed(0, encodeStreamRequest(batch.ops ?? [], ENVELOPE_HEADER_BYTES));
        if (stream) stream.write(message);
        else queued?.push(message);
      },
      cancel() {
        stop();
      },
    };
  };
}
