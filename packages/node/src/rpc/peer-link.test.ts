// PeerPool's sessions against a real DualProtocolListener on 127.0.0.1: which calls share a
// session, and that control traffic and later bulk calls survive a bulk session in trouble.
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { constants as h2 } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { GossipService, Health, HealthCheckResponse_ServingStatus, KVService, ReplicaService } from "@dynamo-ts/proto";
import { afterEach, describe, expect, test } from "vitest";
import { isNotCoordinated } from "../requests/coordinator.js";
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
 * A peer serving Health, Gossip, ReplicaService.Write and KVService.Put. It records which
 * HTTP/2 session each call came over; while `frozen`, it neither reads nor answers replica
 * writes (an overloaded peer whose sockets and PINGs still work); while `refusing`, it refuses
 * every stream unprocessed (REFUSED_STREAM, as for streams that cross its GOAWAY).
 */
async function startPeer(leanCalls: boolean) {
  const sessionIds = new Map<http2.Http2Session, number>();
  const calls: { path: string; session: number }[] = [];
  const state = { frozen: false, refusing: false };
  const connect = connectNodeAdapter({
    routes(router) {
      router.service(Health, {
        check: () => ({ status: HealthCheckResponse_ServingStatus.SERVING }),
        async *watch() {},
      });
      router.service(GossipService, { send: () => ({}) });
      router.service(ReplicaService, { write: () => ({}) });
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
  return { listener, pool, state, address: `127.0.0.1:${port}`, sessionOf };
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

  test("a forwarded write the peer refused unprocessed (REFUSED_STREAM) is not coordinated, so it may go elsewhere", async () => {
    const { pool, state } = await startPeer(leanCalls);
    const put = () => pool.forwardWrite("n2", { key: "k", value: new Uint8Array([1]), context: new Uint8Array(), w: undefined, deadline: new Deadline(5_000) });
    expect(await put()).toEqual(new Uint8Array([7]));
    state.refusing = true;
    const err = await put().then(
      () => expect.fail("answered"),
      (e: unknown) => e,
    );
    expect([isNotCoordinated(err), (err as ConnectError).code]).toEqual([true, Code.Unavailable]);
    expect((err as ConnectError).rawMessage).toMatch(/n2 did not coordinate the write: .*REFUSED_STREAM/);
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
