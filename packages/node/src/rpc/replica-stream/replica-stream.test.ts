import { createServer, type Http2Server, type ServerHttp2Session } from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import type { HintStore } from "@dynamo-ts/hintstore";
import { type StreamRequest, ReplicaService } from "@dynamo-ts/proto";
import type { Storage, StoredRecord } from "@dynamo-ts/storage";
import { decodeSiblingSet, encodeSiblingSet, liveValues, type SiblingSet, update } from "@dynamo-ts/vclock";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { LocalReplica } from "../../local/replica.js";
import { MAX_STREAMED_RECORD_BYTES, MIN_WEDGED_WAIT_MS, ReplicaChannel } from "./client.js";
import { applyReplicaWrite, type ReplicaStore, serveReplicaStream } from "./server.js";
import { leanReplicaStreamHandler } from "./lean-server.js";
import { leanStreamOpener } from "./lean-client.js";
import { clusterSecretMatcher } from "../call-context.js";
import { requireInternal } from "../services.js";
import { CLUSTER_SECRET_HEADER } from "@dynamo-ts/proto";
import { openTempReplica, type TempReplica } from "../../test-support/temp-replica.js";

const SECRET = "replica-stream-test-secret";
const bytes = (text: string) => new TextEncoder().encode(text);
const text = (data: Uint8Array) => new TextDecoder().decode(data);

function version(value: string): SiblingSet {
  return update(undefined, new Map(), "n1", bytes(value), 1);
}

/** A stored record holding `version(value)`, as Storage.getRecord hands it out. */
function record(value: string): StoredRecord {
  const set = version(value);
  return { set, bytes: encodeSiblingSet(set) };
}

/** A real Connect server on 127.0.0.1 serving only ReplicaService.Stream over `replica`. */
class StreamServer {
  private readonly sessions = new Set<ServerHttp2Session>();
  private constructor(
    private readonly server: Http2Server,
    /** The number of ops in each request message the server received. */
    readonly batchesReceived: number[],
    private readonly opened: { count: number },
  ) {
    server.on("session", (session) => {
      this.sessions.add(session);
      session.on("close", () => this.sessions.delete(session));
    });
  }

  static async start(replica: ReplicaStore, port = 0, draining?: AbortSignal, path: ServerPath = "connect-node"): Promise<StreamServer> {
    const batchesReceived: number[] = [];
    const opened = { count: 0 };
    async function* counted(requests: AsyncIterable<StreamRequest>): AsyncIterable<StreamRequest> {
      for await (const batch of requests) {
        batchesReceived.push(batch.ops.length);
        yield batch;
      }
    }
    const handler = connectNodeAdapter({
      // The node's limit with the default --max-value-bytes (1 MiB) and --max-key-bytes.
      readMaxBytes: 1024 * 1024 + 1024 + 64 * 1024,
      routes: (router) =>
        router.service(ReplicaService, {
          async write(req, ctx) {
            requireInternal(ctx, SECRET);
            await applyReplicaWrite(replica, req);
            return {};
          },
          async *stream(requests, ctx) {
            requireInternal(ctx, SECRET);
            opened.count++;
            yield* serveReplicaStream(replica, counted(requests), ctx.signal, draining);
          },
        }),
    });
    const lean = leanReplicaStreamHandler({
      replica,
      isClusterSecret: clusterSecretMatcher(SECRET),
      readMaxBytes: 1024 * 1024 + 1024 + 64 * 1024,
      draining: draining ?? new AbortController().signal,
      observer: { streamOpened: () => opened.count++, messageReceived: (ops) => batchesReceived.push(ops) },
    });
    const server = createServer(path === "lean" ? (req, res) => lean(req, res) || handler(req, res) : handler);
    const started = new StreamServer(server, batchesReceived, opened);
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    return started;
  }

  /** Stream calls the server has accepted. */
  get streamsOpened(): number {
    return this.opened.count;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Stops listening and drops every connection at once, as a crashed peer would. */
  async kill(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const session of this.sessions) session.destroy();
    await closed;
  }
}

/** The calling side: connect-es's client, or the lean client (lean-client.ts) on a session of its own. */
type ClientKind = "connect-es" | "lean";
const openSessions = new Set<Http2SessionManager>();

function channelTo(port: number, secret = SECRET, client: ClientKind = "connect-es"): ReplicaChannel {
  const addSecret: Interceptor = (next) => (req) => {
    req.header.set(CLUSTER_SECRET_HEADER, secret);
    return next(req);
  };
  const baseUrl = `http://127.0.0.1:${port}`;
  const transport = createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true, interceptors: [addSecret] });
  if (client === "connect-es") return new ReplicaChannel(createClient(ReplicaService, transport), "peer1");
  const sessions = new Http2SessionManager(baseUrl);
  openSessions.add(sessions);
  const opener = leanStreamOpener({
    source: { request: (path, headers) => sessions.request("POST", path, headers, {}), responseRead: (stream) => sessions.notifyResponseByteRead(stream) },
    peer: "peer1",
    headers: { [CLUSTER_SECRET_HEADER]: secret },
    readMaxBytes: 4 * 1024 * 1024,
  });
  return new ReplicaChannel(createClient(ReplicaService, transport), "peer1", opener);
}

afterEach(() => {
  for (const sessions of openSessions) sessions.abort();
  openSessions.clear();
});

const later = (ms = 5_000) => AbortSignal.timeout(ms);

/** Each suite runs against connect-node's ReplicaService.Stream and against the lean server (lean-server.ts), with each client. */
type ServerPath = "connect-node" | "lean";
const PATHS: ReadonlyArray<readonly [ServerPath, ClientKind]> = [
  ["connect-node", "connect-es"],
  ["lean", "connect-es"],
  ["connect-node", "lean"],
  ["lean", "lean"],
];

for (const [path, client] of PATHS)
  describe(`the replica stream between two nodes (real HTTP/2 on 127.0.0.1), ${path} server, ${client} client`, () => {
    let temp: TempReplica;
    let storage: Storage;
    let hints: HintStore;
    let replica: LocalReplica;
    let server: StreamServer;
    let channel: ReplicaChannel;

    beforeEach(async () => {
      temp = await openTempReplica({ nodeId: "peer1", prefix: "dynamo-replica-stream-" });
      ({ storage, hints, replica } = temp);
      server = await StreamServer.start(replica, 0, undefined, path);
      channel = channelTo(server.port, SECRET, client);
    });

    afterEach(async () => {
      channel.close();
      await server.kill();
      await temp.close();
    });

    it("writes and reads many keys concurrently over one stream, batching ops issued together", async () => {
      const keys = Array.from({ length: 200 }, (_, i) => `key-${i}`);
      await Promise.all(keys.map((key) => channel.write(key, encodeSiblingSet(version(`value of ${key}`)), undefined, later())));
      const records = await Promise.all(keys.map((key) => channel.read(key, later())));
      for (const [i, key] of keys.entries()) {
        expect(liveValues(decodeSiblingSet(records[i]!)).map(text)).toEqual([`value of ${key}`]);
        expect(liveValues((await storage.get(key))!).map(text)).toEqual([`value of ${key}`]);
      }
      // 400 ops issued in two bursts: they travel in a few messages, not one message each.
      expect(server.batchesReceived.reduce((a, b) => a + b, 0)).toBe(400);
      expect(server.batchesReceived.length).toBeLessThan(20);
    });

    it("splits ops issued together into messages under the receiver's read limit, so large records replicate", async () => {
      const big = "x".repeat(300 * 1024);
      const keys = Array.from({ length: 12 }, (_, i) => `big-${i}`);
      await Promise.all(keys.map((key) => channel.write(key, encodeSiblingSet(version(`${key}:${big}`)), undefined, later())));
      const records = await Promise.all(keys.map((key) => channel.read(key, later())));
      for (const [i, key] of keys.entries()) expect(text(liveValues(decodeSiblingSet(records[i]!))[0]!)).toBe(`${key}:${big}`);
      // Every op of 300 KiB is over the batch budget: one op per message.
      expect(server.batchesReceived.slice(0, 12)).toEqual(Array(12).fill(1));
    });

    it("writes a record over the receiver's message limit in a call of its own: it fails alone, the stream's ops succeed", async () => {
      const huge = encodeSiblingSet(version("y".repeat(MAX_STREAMED_RECORD_BYTES + 100 * 1024)));
      const small = encodeSiblingSet(version("small"));
      const [hugeWrite, smallWrite] = await Promise.allSettled([
        channel.write("huge", huge, undefined, later()),
        channel.write("small", small, undefined, later()),
      ]);
      expect(hugeWrite).toMatchObject({ status: "rejected", reason: { code: Code.ResourceExhausted } });
      expect(smallWrite.status).toBe("fulfilled");
      expect(server.batchesReceived).toEqual([1]);
    });

    it("answers an unknown key with an empty record", async () => {
      expect((await channel.read("never-written", later())).byteLength).toBe(0);
    });

    it("keeps a write with hint_for as a hint, not as the replica's own data", async () => {
      await channel.write("hinted", encodeSiblingSet(version("for node3")), "node3", later());
      expect(await storage.get("hinted")).toBeUndefined();
      expect((await hints.list("node3")).map((hint) => hint.key)).toEqual(["hinted"]);
    });

    it("fails a bad op on its own with InvalidArgument and keeps serving the others", async () => {
      const bad = channel.write("k", bytes("not a sibling set"), undefined, later());
      const empty = channel.write("", encodeSiblingSet(version("x")), undefined, later());
      const good = channel.write("k2", encodeSiblingSet(version("fine")), undefined, later());
      await expect(bad).rejects.toMatchObject({ code: Code.InvalidArgument, rawMessage: expect.stringContaining("record does not decode") });
      await expect(empty).rejects.toMatchObject({ code: Code.InvalidArgument, rawMessage: "key must not be empty" });
      await good;
      expect(liveValues((await storage.get("k2"))!).map(text)).toEqual(["fine"]);
    });

    it("refuses a caller without the cluster secret with PermissionDenied", async () => {
      const intruder = channelTo(server.port, "wrong-secret-wrong-secret", client);
      try {
        await expect(intruder.read("k", later())).rejects.toMatchObject({ code: Code.PermissionDenied });
      } finally {
        intruder.close();
      }
    });

    it("fails the ops of a broken stream with Unavailable, and reopens it for the next op once the peer is back", async () => {
      await channel.write("before", encodeSiblingSet(version("v1")), undefined, later());
      const port = server.port;
      await server.kill();
      await expect(channel.read("before", later())).rejects.toMatchObject({ code: Code.Unavailable });
      server = await StreamServer.start(replica, port, undefined, path);
      expect(liveValues(decodeSiblingSet(await channel.read("before", later()))).map(text)).toEqual(["v1"]);
    });
  });

for (const [path, client] of PATHS)
  describe(`replica ops that outlive their deadline or their stream, ${path} server, ${client} client`, () => {
    let server: StreamServer;
    let channel: ReplicaChannel;
    // A replica whose reads wait until the test releases them: ops in flight on demand.
    const waiting: Array<() => void> = [];
    const release = () => waiting.splice(0).forEach((resolve) => resolve());
    const stalled: ReplicaStore = {
      readRecord: () => new Promise<StoredRecord | undefined>((resolve) => waiting.push(() => resolve(record("late")))),
      write: () => Promise.resolve(),
    };

    beforeEach(async () => {
      server = await StreamServer.start(stalled, 0, undefined, path);
      channel = channelTo(server.port, SECRET, client);
    });

    afterEach(async () => {
      release();
      channel.close();
      await server.kill();
    });

    it("rejects an op with DeadlineExceeded when its deadline passes first, and ignores the late answer", async () => {
      const read = channel.read("slow", AbortSignal.timeout(50));
      await expect(read).rejects.toMatchObject({ code: Code.DeadlineExceeded });
      release();
      // The stream is still usable: the late answer for the abandoned op is dropped, new ops work.
      await channel.write("after", encodeSiblingSet(version("x")), undefined, later());
    });

    it("abandons a stream on which nothing came back for an op's whole deadline: its other ops fail, the next op gets a fresh stream", async () => {
      const patient = channel.read("slow", later()).then(
        () => undefined,
        (e: unknown) => e,
      );
      const timedOut = channel.read("slow", AbortSignal.timeout(MIN_WEDGED_WAIT_MS + 50)).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(await timedOut).toMatchObject({ code: Code.DeadlineExceeded });
      expect(await patient).toMatchObject({ code: Code.Unavailable, rawMessage: expect.stringContaining("no answer on the replica stream to peer1") });
      await channel.write("fresh", encodeSiblingSet(version("x")), undefined, later());
      expect(server.streamsOpened).toBe(2);
    });

    it("does not let one caller's tiny deadline retire the stream other callers' ops are on", async () => {
      const patient = channel.read("slow", later());
      await expect(channel.read("slow", AbortSignal.timeout(1))).rejects.toMatchObject({ code: Code.DeadlineExceeded });
      while (waiting.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      release();
      expect(liveValues(decodeSiblingSet(await patient)).map(text)).toEqual(["late"]);
      expect(server.streamsOpened).toBe(1);
    });

    it("rejects at once when the signal has already fired", async () => {
      const controller = new AbortController();
      controller.abort();
      await expect(channel.write("k", new Uint8Array(), undefined, controller.signal)).rejects.toMatchObject({ code: Code.Canceled });
    });

    it("fails ops in flight with Unavailable when the peer's connection drops", async () => {
      const read = channel.read("slow", later()).then(
        () => undefined,
        (e: unknown) => e,
      );
      // Wait until the op has reached the server, so it is really in flight on the stream.
      while (server.batchesReceived.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      await server.kill();
      const err = await read;
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.Unavailable);
    });

    it("when the serving node starts to stop, answers the ops it took, then ends the stream; later ops fail with Unavailable", async () => {
      const draining = new AbortController();
      const drainingServer = await StreamServer.start(stalled, 0, draining.signal, path);
      const toDraining = channelTo(drainingServer.port, SECRET, client);
      try {
        const taken = toDraining.read("slow", later());
        while (drainingServer.batchesReceived.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
        draining.abort();
        release();
        expect(liveValues(decodeSiblingSet(await taken)).map(text)).toEqual(["late"]);
        await expect(toDraining.read("after-drain", later())).rejects.toMatchObject({ code: Code.Unavailable });
      } finally {
        toDraining.close();
        await drainingServer.kill();
      }
    });

    it("fails ops in flight with Unavailable when the channel is closed", async () => {
      const read = channel.read("slow", later());
      channel.close();
      await expect(read).rejects.toMatchObject({ code: Code.Unavailable, rawMessage: "replica stream to peer1 closed" });
    });
  });

describe("serveReplicaStream", () => {
  it("answers every op, in completion order, and ends once the caller's side ended and all were answered", async () => {
    const order: string[] = [];
    const store: ReplicaStore = {
      // "slow" completes after "fast" although it arrived first: ops do not wait for each other.
      readRecord: async (key) => {
        if (key === "slow") await new Promise((resolve) => setTimeout(resolve, 30));
        order.push(key);
        return record(key);
      },
      write: () => Promise.resolve(),
    };
    async function* requests(): AsyncIterable<StreamRequest> {
      yield {
        $typeName: "dynamo.v1.StreamRequest",
        ops: [
          { $typeName: "dynamo.v1.ReplicaOp", id: 1, op: { case: "read", value: { $typeName: "dynamo.v1.ReadRequest", key: "slow" } } },
          { $typeName: "dynamo.v1.ReplicaOp", id: 2, op: { case: "read", value: { $typeName: "dynamo.v1.ReadRequest", key: "fast" } } },
          { $typeName: "dynamo.v1.ReplicaOp", id: 3, op: { case: undefined } },
        ],
      };
    }
    const answered: Array<[number | undefined, string | undefined]> = [];
    for await (const batch of serveReplicaStream(store, requests(), new AbortController().signal)) {
      for (const result of batch.results ?? []) answered.push([result.id, result.result?.case]);
    }
    expect(order).toEqual(["fast", "slow"]);
    expect(answered).toEqual([
      [3, "error"],
      [2, "read"],
      [1, "read"],
    ]);
  });

  it("stops answering when the call is cancelled", async () => {
    const store: ReplicaStore = { readRecord: () => new Promise(() => {}), write: () => Promise.resolve() };
    async function* requests(): AsyncIterable<StreamRequest> {
      yield {
        $typeName: "dynamo.v1.StreamRequest",
        ops: [{ $typeName: "dynamo.v1.ReplicaOp", id: 1, op: { case: "read", value: { $typeName: "dynamo.v1.ReadRequest", key: "never" } } }],
      };
      await new Promise(() => {});
    }
    const cancel = new AbortController();
    setTimeout(() => cancel.abort(), 20);
    const batches = [];
    for await (const batch of serveReplicaStream(store, requests(), cancel.signal)) batches.push(batch);
    expect(batches).toEqual([]);
  });
});
