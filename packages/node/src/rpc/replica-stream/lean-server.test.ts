// The lean ReplicaService.Stream server on hostile bytes from a caller that has the secret (a
// peer with a bug, or a secret that leaked): every body gets a well-formed Connect stream answer
// that ends with an end-stream message, an error in it when the body was not valid; no crash.
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { CLUSTER_SECRET_HEADER, StreamRequestSchema } from "@dynamo-ts/proto";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterSecretMatcher } from "../call-context.js";
import { leanReplicaStreamHandler, REPLICA_STREAM_PATH } from "./lean-server.js";
import type { ReplicaStore } from "./server.js";

const SECRET = "lean-stream-test-secret-0123456789";
const READ_MAX_BYTES = 4096;
const store: ReplicaStore = { readRecord: async () => undefined, write: async () => {} };

function envelope(flags: number, data: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + data.byteLength);
  out[0] = flags;
  out.writeUInt32BE(data.byteLength, 1);
  out.set(data, 5);
  return out;
}

/** The answer's envelopes: [flags, data] each; throws if the body is not a sequence of whole envelopes. */
function envelopes(body: Buffer): Array<[number, Buffer]> {
  const out: Array<[number, Buffer]> = [];
  for (let at = 0; at < body.byteLength;) {
    const length = body.readUInt32BE(at + 1);
    out.push([body[at]!, body.subarray(at + 5, at + 5 + length)]);
    at += 5 + length;
    if (at > body.byteLength) throw new Error("truncated envelope in the answer");
  }
  return out;
}

describe("the lean replica stream server on hostile bodies", () => {
  let server: http2.Http2Server;
  let session: http2.ClientHttp2Session;
  beforeAll(async () => {
    const lean = leanReplicaStreamHandler({
      replica: store,
      isClusterSecret: clusterSecretMatcher(SECRET),
      readMaxBytes: READ_MAX_BYTES,
      draining: new AbortController().signal,
    });
    server = http2.createServer((req, res) => {
      if (!lean(req, res)) {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });
  afterAll(async () => {
    session.close();
    await new Promise((r) => server.close(r));
  });

  function call(body: Uint8Array): Promise<{ status: number; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const stream = session.request({
        ":method": "POST",
        ":path": REPLICA_STREAM_PATH,
        "content-type": "application/connect+proto",
        [CLUSTER_SECRET_HEADER]: SECRET,
      });
      let status = 0;
      const chunks: Buffer[] = [];
      stream.on("response", (h) => (status = Number(h[":status"])));
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => resolve({ status, body: Buffer.concat(chunks) }));
      stream.on("error", reject);
      stream.end(body);
    });
  }

  /** The end-stream message's error code, or "" when it ended cleanly. */
  async function endOf(body: Uint8Array): Promise<{ code: string; results: number }> {
    const answer = await call(body);
    expect(answer.status).toBe(200);
    const frames = envelopes(answer.body);
    const last = frames.at(-1)!;
    expect(last[0]).toBe(2);
    const end = JSON.parse(last[1].toString()) as { error?: { code: string } };
    return { code: end.error?.code ?? "", results: frames.length - 1 };
  }

  it("answers ops and ends cleanly", async () => {
    const ops = toBinary(StreamRequestSchema, create(StreamRequestSchema, { ops: [{ id: 1, op: { case: "read", value: { key: "k" } } }] }));
    expect(await endOf(envelope(0, ops))).toEqual({ code: "", results: 1 });
  });

  it("names what was wrong: an oversized message, a compressed one, a client end-stream, garbage, a cut envelope", async () => {
    expect((await endOf(Buffer.from([0, 0, 1, 0, 0]))).code).toBe("resource_exhausted");
    expect((await endOf(envelope(1, Buffer.from("x")))).code).toBe("invalid_argument");
    expect((await endOf(envelope(2, Buffer.from("{}")))).code).toBe("invalid_argument");
    expect((await endOf(envelope(0, Buffer.from("garbage")))).code).toBe("invalid_argument");
    expect((await endOf(envelope(0, Buffer.from("abc")).subarray(0, 6))).code).toBe("invalid_argument");
  });

  it("answers any bytes with a whole Connect stream that ends with an end-stream message", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc
            .array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.uint8Array({ maxLength: 60 })), { maxLength: 5 })
            .map((parts) => Buffer.concat(parts.map(([f, d]) => envelope(f, d)))),
        ),
        async (body) => {
          const end = await endOf(body);
          expect(["", "invalid_argument", "resource_exhausted"]).toContain(end.code);
        },
      ),
      { numRuns: 200, seed: 7 },
    );
  });
});
