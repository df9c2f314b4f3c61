// PeerPool's sessions against a real DualProtocolListener on 127.0.0.1: which calls share a
// session, and that control traffic and later bulk calls survive a bulk session in trouble.
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { constants as h2 } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { GossipService, Health, HealthCheckResponse_ServingStatus, KVService, ReplicaService } from "@dynamo-ts/proto";
import { afterEach, describe, expect, test } from "vitest";
import type { CoordinateRequest } from "@dynamo-ts/proto";
import { isNotCoordinated, notCoordinatedError } from "../requests/coordinator.js";
import { MAX_STREAMED_RECORD_BYTES } from "./replica-stream/client.js";
import { serveReplicaStream } from "./replica-stream/server.js";
import { Deadline } from "../requests/deadline.js";
import { DualProtocolListener } from "./listener.js";
import { hasClusterSecret, PeerPool } from "./peers.js";
import { CLUSTER_SECRET_HEADER } from "@dynamo-ts/proto";

const SECRET = "peer-link-test-secret";
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/**
 * A peer serving Health, Gossip, ReplicaService.Write, the replica stream (forwarded writes:
 * `coordinate`) and KVService.Put. It records which HTTP/2 session each call came over and the
 * forwarded writes it was handed; while `frozen`, it neither reads nor answers replica writes
 * (an overloaded peer whose sockets and PINGs still work); while `refusing`, it refuses every
 * stream unprocessed (REFUSED_STREAM, as for streams that cross its GOAWAY).
 */
async function startPeer(leanCalls: boolean) {
  const sessionIds = new Map<http2.Http2Session, number>();
  const calls: { path: string; session: number }[] = [];
  const state = { frozen: false, refusing: false, denying: false };
  const coordinated: CoordinateRequest[] = [];
  const forwarded: { coordinate: (req: CoordinateRequest) => Promise<Uint8Array> } = {
    coordinate: () => Promise.resolve(new Uint8Array([7])),
  };
  const connect = connectNodeAdapter({
    routes(router) {
      router.service(Health, {
        check: () => ({ status: HealthCheckResponse_ServingStatus.SERVING }),
        async *watch() {},
      });
      router.service(GossipService, { send: () => ({}) });
      router.service(ReplicaService, {
        write: () => ({}),
        stream: (requests, ctx) =>
          state.denying
            ? // A response stream that fails at once, as a peer checking another secret answers.
              {
                [Symbol.asyncIterator]: () => ({
                  next: () => Promise.reject(new ConnectError("the cluster secret is missing or wrong", Code.PermissionDenied)),
                }),
              }
            : serveReplicaStream({ write: () => Promise.resolve(), readRecord: () => Promise.resolve(undefined) }, requests, ctx.signal, undefined, (req) => {
                coordinated.push(req);
                return forwarded.coordinate(req);
              }),
      });
      router.service(KVService, { put: () => ({ context: new Uint8Array([7]) }) });
    },
  });
  const listener = new DualProtocolListener((req, res) => {
    const session = (req as http2.Http2ServerRequest).stream?.session;
    if (session && !sessionIds.has(session)) sessionIds.set(session, sessionIds.size + 1);
    calls.push({ path: req.url ?? "", session: session ? sessionIds.get(session)! : 0 });
    if (state.frozen && req.url === "/dynamo.v1.ReplicaService/Write") return;
    if (state.refusing) return void (req as http2.Http2ServerRequest).stream.close(h2.NGHTTP2_REFUSED_STREAM);
    connect(req as http.IncomingMessage, res as http.ServerResponse);
  });
  const { port } = await listener.listen(0, "127.0.0.1");
  cleanups.push(() => listener.close(0));
  const pool = new PeerPool(SECRET, () => `127.0.0.1:${port}`, { leanCalls });
  cleanups.push(() => pool.close());
  const sessionOf = (path: string) => calls.filter((c) => c.path === path).map((c) => c.session);
  return { listener, pool, state, address: `127.0.0.1:${port}`, sessionOf, coordinated, forwarded, calls };
}

// Every case through both calling sides: the SDK's lean unary transport and connect-es's.
describe.each([
  ["lean calls", true],
  ["connect-es calls", false],
])("%s", (_name, leanCalls) => {
  test("probes and gossip go over one control session, bulk calls over another", async () => {
    const { listener, pool, address, sessionOf } = await startPeer(leanCalls);
    await pool.deliverHint("n2", "k", new Uint8Array(10), 5_000);
    await pool.probe("n2", 5_000);
    await pool.sendGossip(address, new Uint8Array([1]), 5_000);
    await pool.probe("n2", 5_000);
    const [bulk] = sessionOf("/dynamo.v1.ReplicaService/Write");
    const probes = sessionOf("/grpc.health.v1.Health/Check");
    const gossip = sessionOf("/dynamo.v1.GossipService/Send");
    expect(new Set([...probes, ...gossip]).size).toBe(1);
    expect(probes[0]).not.toBe(bulk);
    expect(listener.stats().acceptedConnections).toBe(2);
  });

  test("a bulk session poisoned by abandoned large uploads: probes and gossip still pass, and bulk calls move to a new session", async () => {
    const { pool, state, address, sessionOf } = await startPeer(leanCalls);
    await pool.deliverHint("n2", "k", new Uint8Array(10), 5_000);
    // Eight 2 MiB hints given up on their deadline while the peer reads nothing: about 16 MB of
    // request data stays counted against the bulk session's 10 MB budget.
    state.frozen = true;
    for (let i = 0; i < 8; i++) {
      await expect(pool.deliverHint("n2", "k", new Uint8Array(2 * 1024 * 1024), 150)).rejects.toThrow(/deadline/i);
    }
    state.frozen = false;
    await pool.probe("n2", 5_000);
    await pool.sendGossip(address, new Uint8Array([1]), 5_000);
    // The first bulk call after that finds the session refusing every response...
    await expect(pool.deliverHint("n2", "k", new Uint8Array(10), 5_000)).rejects.toThrow(/NGHTTP2_ENHANCE_YOUR_CALM/);
    // ...and the next ones go over a new session.
    await pool.deliverHint("n2", "k", new Uint8Array(10), 5_000);
    await pool.deliverHint("n2", "k", new Uint8Array(10), 5_000);
    expect(pool.stats().bulkSessionsRecycled).toBe(1);
    const writes = sessionOf("/dynamo.v1.ReplicaService/Write");
    expect(new Set(writes).size).toBe(2);
  });

  // The context as plain bytes (the lean stream client hands out views of the received frame: Buffers).
  const forward = async (pool: PeerPool, value: Uint8Array | null, w?: number) =>
    Uint8Array.from(
      await pool.forwardWrite("n2", {
        key: "k",
        value,
        contentType: value ? "text/plain" : undefined,
        context: new Uint8Array([1, 2]),
        w,
        deadline: new Deadline(5_000),
      }),
    );
  const failure = (call: Promise<unknown>) =>
    call.then(
      () => expect.fail("answered"),
      (e: unknown) => e as ConnectError,
    );

  test("a forwarded write goes as an op on the replica stream, and its answer is the new context", async () => {
    const { pool, coordinated, calls } = await startPeer(leanCalls);
    expect(await forward(pool, new Uint8Array([1]), 2)).toEqual(new Uint8Array([7]));
    expect(await forward(pool, null)).toEqual(new Uint8Array([7]));
    expect(await forward(pool, new Uint8Array())).toEqual(new Uint8Array([7]));
    expect(coordinated.map(({ key, value, contentType, context, w }) => ({ key, value, contentType, context, w }))).toEqual([
      { key: "k", value: new Uint8Array([1]), contentType: "text/plain", context: new Uint8Array([1, 2]), w: 2 },
      // A delete carries no value; an empty value is a put.
      { key: "k", value: undefined, contentType: "", context: new Uint8Array([1, 2]), w: 0 },
      { key: "k", value: new Uint8Array(), contentType: "text/plain", context: new Uint8Array([1, 2]), w: 0 },
    ]);
    expect(coordinated.every((req) => req.timeoutMs > 4_000 && req.timeoutMs <= 5_000)).toBe(true);
    expect(calls.filter((c) => c.path === "/dynamo.v1.KVService/Put")).toEqual([]);
  });

  test("a value too large for the stream is forwarded as a KVService call", async () => {
    const { pool, coordinated, calls } = await startPeer(leanCalls);
    expect(await forward(pool, new Uint8Array(MAX_STREAMED_RECORD_BYTES))).toEqual(new Uint8Array([7]));
    expect(coordinated).toEqual([]);
    expect(calls.filter((c) => c.path === "/dynamo.v1.KVService/Put")).toHaveLength(1);
  });

  test("a forwarded write the peer declined is not coordinated; one it answered with an error is that error, even Unavailable", async () => {
    const { pool, forwarded } = await startPeer(leanCalls);
    forwarded.coordinate = () => Promise.reject(notCoordinatedError("n2 cannot write to its data store now"));
    const declined = await failure(forward(pool, new Uint8Array([1])));
    expect([isNotCoordinated(declined), declined.code, declined.rawMessage]).toEqual([true, Code.Unavailable, "n2 cannot write to its data store now"]);
    // The write's own outcome: retrying it on another replica would issue a second version.
    forwarded.coordinate = () => Promise.reject(new ConnectError("not enough replicas acknowledged the write", Code.Unavailable));
    const answered = await failure(forward(pool, new Uint8Array([1])));
    expect([isNotCoordinated(answered), answered.code, answered.rawMessage]).toEqual([false, Code.Unavailable, "not enough replicas acknowledged the write"]);
    forwarded.coordinate = () => Promise.reject(new ConnectError("context is not valid", Code.InvalidArgument));
    const invalid = await failure(forward(pool, new Uint8Array([1])));
    expect([isNotCoordinated(invalid), invalid.code]).toEqual([false, Code.InvalidArgument]);
  });

  test("a forwarded write whose deadline passes while the peer coordinates it fails with DeadlineExceeded, and the stream stays up", async () => {
    const { pool, forwarded } = await startPeer(leanCalls);
    forwarded.coordinate = (req) => new Promise((resolve) => setTimeout(() => resolve(new Uint8Array([8])), req.timeoutMs + 1_500));
    const late = await failure(
      pool.forwardWrite("n2", { key: "k", value: new Uint8Array([1]), context: new Uint8Array(), w: undefined, deadline: new Deadline(50) }),
    );
    expect([isNotCoordinated(late), late.code]).toEqual([false, Code.DeadlineExceeded]);
    forwarded.coordinate = () => Promise.resolve(new Uint8Array([9]));
    expect(await forward(pool, new Uint8Array([1]))).toEqual(new Uint8Array([9]));
  });

  test("a forwarded write whose stream the peer refuses (PermissionDenied) fails with that, not as one to hand to another replica", async () => {
    const { pool, state } = await startPeer(leanCalls);
    state.denying = true;
    const err = await failure(forward(pool, new Uint8Array([1])));
    expect([isNotCoordinated(err), err.code]).toEqual([false, Code.PermissionDenied]);
  });

  test("a forwarded write the peer refused unprocessed (REFUSED_STREAM) is not coordinated, so it may go elsewhere", async () => {
    const { pool, state } = await startPeer(leanCalls);
    const put = () => pool.forwardWrite("n2", { key: "k", value: new Uint8Array([1]), context: new Uint8Array(), w: undefined, deadline: new Deadline(5_000) });
    expect(Uint8Array.from(await put())).toEqual(new Uint8Array([7]));
    pool.close();
    state.refusing = true;
    const err = await failure(put());
    expect([isNotCoordinated(err), err.code]).toEqual([true, Code.Unavailable]);
    expect(err.rawMessage).toMatch(/n2 did not coordinate the write: .*REFUSED_STREAM/);
  });
});

test("hasClusterSecret accepts the secret header and nothing else", () => {
  const trusted = hasClusterSecret(SECRET);
  expect(trusted({ [CLUSTER_SECRET_HEADER]: SECRET })).toBe(true);
  expect(trusted({ [CLUSTER_SECRET_HEADER]: `${SECRET}x` })).toBe(false);
  expect(trusted({ [CLUSTER_SECRET_HEADER]: "" })).toBe(false);
  expect(trusted({ [CLUSTER_SECRET_HEADER]: [SECRET, SECRET] })).toBe(false);
  expect(trusted({})).toBe(false);
});
