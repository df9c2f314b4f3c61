// The lean replica stream client against a peer that answers badly (a peer with a bug, or not a
// dynamo node at all): every op settles with a ConnectError saying what happened, never a crash,
// a hang or an op resolved with bytes that were not its answer; the next op opens a new stream.
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { CLUSTER_SECRET_HEADER, ReplicaService, StreamResponseSchema } from "@dynamo-ts/proto";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ReplicaChannel, type StreamOpener } from "./client.js";
import { envelope } from "../envelope.js";
import { leanStreamOpener } from "./lean-client.js";

const SECRET = "lean-client-test-secret-0123456789";
const READ_MAX_BYTES = 4096;

/** What the fake peer answers to the next stream: status, headers, then body chunks (and whether to reset instead of ending). */
interface Answer {
  status: number;
  contentType: string;
  chunks: Uint8Array[];
  reset?: boolean;
}

describe("the lean replica stream client against a peer that answers badly", () => {
  let server: http2.Http2Server;
  let next: Answer;
  const seen: http2.IncomingHttpHeaders[] = [];
  let channel: ReplicaChannel;
  let sessions: Http2SessionManager;
  let openerFor: (answer: Answer) => StreamOpener;
  const serverSessions = new Set<http2.ServerHttp2Session>();

  beforeAll(async () => {
    server = http2.createServer();
    server.on("session", (session) => {
      serverSessions.add(session);
      session.on("close", () => serverSessions.delete(session));
    });
    server.on("stream", (stream, headers) => {
      seen.push(headers);
      const answer = next;
      stream.on("error", () => {});
      stream.respond({ ":status": answer.status, "content-type": answer.contentType });
      for (const chunk of answer.chunks) stream.write(chunk);
      if (answer.reset) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      else stream.end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    sessions = new Http2SessionManager(baseUrl);
    openerFor = (answer) => {
      next = answer;
      return opener;
    };
    const opener = leanStreamOpener({
      source: { request: (path, headers) => sessions.request("POST", path, headers, {}), responseRead: (s) => sessions.notifyResponseByteRead(s) },
      peer: "peer1",
      headers: { [CLUSTER_SECRET_HEADER]: SECRET },
      readMaxBytes: READ_MAX_BYTES,
    });
    channel = new ReplicaChannel(createClient(ReplicaService, createConnectTransport({ baseUrl, httpVersion: "2" })), "peer1", opener);
  });

  afterAll(async () => {
    channel.close();
    sessions.abort();
    const closed = new Promise((resolve) => server.close(resolve));
    for (const session of serverSessions) session.destroy();
    await closed;
  });

  const ok = (status = 200, chunks: Uint8Array[] = [], contentType = "application/connect+proto"): Answer => ({ status, contentType, chunks });
  const end = (json: string) => envelope(2, Buffer.from(json));
  const readResult = (id: number, record: string) =>
    envelope(
      0,
      toBinary(StreamResponseSchema, create(StreamResponseSchema, { results: [{ id, result: { case: "read", value: { record: Buffer.from(record) } } }] })),
    );

  async function readWith(answer: Answer): Promise<ConnectError | Uint8Array> {
    next = answer;
    // Each answer on a stream of its own (the stream a previous answer ended may not be retired yet).
    channel.close();
    return channel.read("k", AbortSignal.timeout(5_000)).then(
      (record) => record,
      (err: unknown) => err as ConnectError,
    );
  }

  it("sends the Connect stream headers and the cluster secret, and reads a good answer", async () => {
    // Ids start at 1 on a new channel.
    const result = await readWith(ok(200, [readResult(1, "record"), end("{}")]));
    expect(Buffer.from(result as Uint8Array).toString()).toBe("record");
    expect(seen.at(-1)).toMatchObject({
      ":method": "POST",
      ":path": "/dynamo.v1.ReplicaService/Stream",
      "content-type": "application/connect+proto",
      [CLUSTER_SECRET_HEADER]: SECRET,
    });
  });

  it("maps refusals to their codes and everything else to Unavailable, with the reason", async () => {
    expect(await readWith(ok(200, [end('{"error":{"code":"permission_denied","message":"no secret"}}')]))).toMatchObject({
      code: Code.PermissionDenied,
      rawMessage: "no secret",
    });
    expect(await readWith(ok(404))).toMatchObject({ code: Code.Unimplemented });
    expect(await readWith(ok(403))).toMatchObject({ code: Code.PermissionDenied });
    expect(await readWith(ok(503))).toMatchObject({ code: Code.Unavailable });
    expect(await readWith(ok(200, [end('{"error":{"code":"internal","message":"boom"}}')]))).toMatchObject({
      code: Code.Unavailable,
      rawMessage: expect.stringContaining("boom"),
    });
    expect(await readWith(ok(200, [end("{}")]))).toMatchObject({ code: Code.Unavailable, rawMessage: "replica stream to peer1 ended" });
    expect(await readWith(ok(200, [], "text/html"))).toMatchObject({ code: Code.Unavailable, rawMessage: expect.stringContaining("content type") });
    expect(await readWith(ok(200, [Buffer.from([0, 0, 0, 0x20, 0])]))).toMatchObject({
      code: Code.Unavailable,
      rawMessage: expect.stringContaining("readMaxBytes"),
    });
    expect(await readWith(ok(200, [envelope(1, Buffer.from("x"))]))).toMatchObject({
      code: Code.Unavailable,
      rawMessage: expect.stringContaining("compressed"),
    });
    expect(await readWith(ok(200, [envelope(0, Buffer.from([0xff, 0xff]))]))).toMatchObject({
      code: Code.Unavailable,
      rawMessage: expect.stringContaining("does not parse"),
    });
    expect(await readWith(ok(200, [end("not json")]))).toMatchObject({ code: Code.Unavailable, rawMessage: expect.stringContaining("end-stream") });
    expect(await readWith(ok(200, [readResult(99, "x").subarray(0, 7)]))).toMatchObject({
      code: Code.Unavailable,
      rawMessage: expect.stringContaining("inside a message"),
    });
    expect(await readWith(ok(200))).toMatchObject({ code: Code.Unavailable, rawMessage: expect.stringContaining("without an end-stream message") });
    expect(await readWith({ ...ok(200), reset: true })).toMatchObject({ code: Code.Unavailable });
  });

  it("takes an op's own error with its code, and a code out of range as Unknown", async () => {
    const opError = (code: number) =>
      envelope(
        0,
        toBinary(
          StreamResponseSchema,
          create(StreamResponseSchema, { results: [{ id: 1, result: { case: "error", value: { code, message: "op failed" } } }] }),
        ),
      );
    // The channel's ids continue across streams: answer whatever id the op got.
    const answerFor = async (code: number) => {
      next = ok(200, []);
      channel.close();
      const fresh = new ReplicaChannel(
        createClient(ReplicaService, createConnectTransport({ baseUrl: "http://127.0.0.1:1", httpVersion: "2" })),
        "peer1",
        openerFor(ok(200, [opError(code), end("{}")])),
      );
      try {
        return await fresh.read("k", AbortSignal.timeout(5_000)).then(
          () => undefined,
          (err: unknown) => err as ConnectError,
        );
      } finally {
        fresh.close();
      }
    };
    expect(await answerFor(Code.InvalidArgument)).toMatchObject({ code: Code.InvalidArgument, rawMessage: "op failed" });
    expect(await answerFor(99)).toMatchObject({ code: Code.Unknown, rawMessage: "op failed" });
    expect(await answerFor(0)).toMatchObject({ code: Code.Unknown });
  });

  it("settles every op on any answer, with a ConnectError unless the answer really was its result", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(200, 200, 200, 400, 403, 404, 500, 503),
        fc.constantFrom("application/connect+proto", "application/json", ""),
        fc.array(
          fc.oneof(
            fc.uint8Array({ maxLength: 80 }),
            fc.tuple(fc.integer({ min: 0, max: 3 }), fc.uint8Array({ maxLength: 60 })).map(([flags, data]) => envelope(flags, data)),
            fc.constant(end("{}")),
          ),
          { maxLength: 4 },
        ),
        fc.boolean(),
        async (status, contentType, chunks, reset) => {
          const result = await readWith({ status, contentType, chunks, reset });
          // A broken stream: Unavailable, or a refusal; an op the peer answered with an error: any valid code.
          if (result instanceof ConnectError) expect(Object.values(Code)).toContain(result.code);
          else expect(result).toBeInstanceOf(Uint8Array);
        },
      ),
      { numRuns: 150, seed: 11 },
    );
  });
});
