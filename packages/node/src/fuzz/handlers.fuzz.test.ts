// Hostile bytes through the node's own decoding and handler logic, in process (no sockets):
//
// 1. fromBinary of every request message the node's services take, on random bytes and on valid
//    encodings mutated (bit flips, truncation, extension, splices, length and varint fields forged
//    huge): a message comes back (and round-trips through toBinary) or an Error is thrown (connect
//    turns it into a "parse binary" error, which the node answers with InvalidArgument).
// 2. The decoded, arbitrary but well-typed messages fed to the handlers: the replica write/read
//    functions and the replica Stream server over a fake store and over a real LocalReplica, the
//    anti-entropy responder through the real Connect router, and gossip bytes through Membership.
//    Every failure must be a ConnectError with a client-error code; nothing may throw another
//    kind, answer Internal/Unknown/DataLoss, or hang.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DescMessage, equals, fromBinary, type MessageInitShape, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { encodeMessage, type GossipMessage } from "@dynamo-ts/gossip";
import { HASH_FORMAT_VERSION } from "@dynamo-ts/merkle";
import {
  AntiEntropyService,
  GossipService,
  ReplicaService,
  DeleteRequestSchema,
  ExchangeRequestSchema,
  ExportRequestSchema,
  ImportRequestSchema,
  GetRequestSchema,
  HealthCheckRequestSchema,
  PurgeRequestSchema,
  PutRequestSchema,
  ReadRequestSchema,
  RepairKeyRequestSchema,
  ResetRequestSchema,
  ScanRequestSchema,
  SendRequestSchema,
  StatusRequestSchema,
  type StreamRequest,
  StreamRequestSchema,
  type StreamResponseSchema,
  WriteRequestSchema,
  type ExchangeRequest,
  type ExchangeResponse,
} from "@dynamo-ts/proto";
import { Ring } from "@dynamo-ts/ring";
import type { StoredRecord } from "@dynamo-ts/storage";
import { decodeSiblingSet, emptySet, encodeSiblingSet, type SiblingSet, sync } from "@dynamo-ts/vclock";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AntiEntropy, antiEntropyService, replicaRanges, treeDepthFor } from "../background/anti-entropy/index.js";
import { jsonLogger } from "../observability/log.js";
import { Membership } from "../cluster/membership.js";
import { Metrics } from "../observability/metrics.js";
import { LocalReplica } from "../local/replica.js";
import { applyReplicaWrite, readReplicaRecord, type ReplicaStore, serveReplicaStream } from "../rpc/replica-stream/server.js";
import { messageLimits } from "../rpc/message-limits.js";
import { registerServices, requireInternal, type ServiceState } from "../rpc/services.js";
import * as gen from "./messages.js";
import { mutateBytes, Rng } from "./wire.js";
import type { VersionedRecord } from "../requests/replicas.js";
import { CLUSTER_SECRET_HEADER } from "@dynamo-ts/proto";
import { openTempReplica, type TempReplica } from "../test-support/temp-replica.js";
import { CoordinatorBench } from "../test-support/coordinator-bench.js";
import { coordinateForwarded } from "../rpc/kv-operations.js";

/** Every property runs from a fixed seed; the per-run Rng seeds come from fast-check's, so a failure replays exactly. */
const SEED = 0xf022ed;

/** Codes that say "your request was wrong" (or a legitimate state): the only failures hostile input may get. */
const CLIENT_CODES = new Set<Code>([
  Code.Canceled,
  Code.InvalidArgument,
  Code.NotFound,
  Code.AlreadyExists,
  Code.PermissionDenied,
  Code.ResourceExhausted,
  Code.FailedPrecondition,
  Code.Aborted,
  Code.OutOfRange,
  Code.Unimplemented,
  Code.Unauthenticated,
]);

function expectClientError(error: unknown, what: string): void {
  if (!(error instanceof ConnectError)) {
    throw new Error(`${what}: threw ${error instanceof Error ? `${error.constructor.name}: ${error.message}` : String(error)} instead of a ConnectError`, {
      cause: error,
    });
  }
  if (!CLIENT_CODES.has(error.code)) throw new Error(`${what}: answered ${Code[error.code]} (${error.rawMessage}), not a client-error code`, { cause: error });
}

const short = (value: unknown): string => {
  const text = JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? `<${v.byteLength} bytes>` : typeof v === "bigint" ? String(v) : v));
  return text.length > 300 ? `${text.slice(0, 300)}...` : text;
};

/** Several mutations in a row, or (sometimes) bytes with no valid origin at all. */
function hostileBytes(rng: Rng, valid: Uint8Array, other: Uint8Array): Uint8Array {
  if (rng.chance(0.08)) return rng.bytes(rng.int(64));
  let bytes = valid;
  const rounds = 1 + rng.int(3);
  for (let k = 0; k < rounds; k++) bytes = mutateBytes(rng, bytes, other);
  return bytes;
}

/** fromBinary's contract: a message that round-trips, or a thrown Error. */
function decodeOrThrow<D extends DescMessage>(schema: D, input: Uint8Array): MessageShape<D> | undefined {
  try {
    const message = fromBinary(schema, input);
    const again = fromBinary(schema, toBinary(schema, message));
    expect(equals(schema, message, again)).toBe(true);
    return message;
  } catch (error) {
    expect(error).toBeInstanceOf(Error);
    return undefined;
  }
}

/** A hostile message of `schema`: the valid message as is, or mutated bytes that still decode. */
function hostileMessage<D extends DescMessage>(rng: Rng, schema: D, make: (rng: Rng) => gen.Init<D>): MessageShape<D> | undefined {
  const valid = gen.encode(schema, make(rng));
  if (rng.chance(0.3)) return fromBinary(schema, valid);
  return decodeOrThrow(schema, hostileBytes(rng, valid, gen.encode(schema, make(rng))));
}

const validGossip = (rng: Rng): GossipMessage => {
  const node = () => rng.pick(["n1", "n2", "self", "x"]);
  const ringStatus = () => rng.pick(["joining", "normal", "leaving", "left", "removed"] as const);
  const from = {
    id: rng.pick(["n1", "n2", "x"]),
    address: "127.0.0.1:1",
    incarnation: rng.pick([0, 1, Number.MAX_SAFE_INTEGER]),
    ringStatus: ringStatus(),
    ringVersion: rng.pick([0, 1, Number.MAX_SAFE_INTEGER]),
  };
  const updates = Array.from({ length: rng.int(4) }, () => ({
    id: node(),
    address: "127.0.0.1:2",
    state: rng.pick(["alive", "suspect", "dead", "left"] as const),
    incarnation: rng.pick([0, 5, Number.MAX_SAFE_INTEGER - 1, Number.MAX_SAFE_INTEGER]),
    ringStatus: ringStatus(),
    ringVersion: rng.pick([0, 3, Number.MAX_SAFE_INTEGER]),
  }));
  const seq = rng.int(2 ** 32);
  switch (rng.int(5)) {
    case 0:
      return { type: "ping", seq, from, targetId: node(), updates };
    case 1:
      return { type: "ping-req", seq, from, target: { id: node(), address: "127.0.0.1:3" }, updates };
    case 2:
      return { type: "sync-request", seq, from, updates };
    case 3:
      return { type: "sync-response", seq, from, updates };
    default:
      return { type: "ack", seq, from, updates };
  }
};

const OPEN = { start: 1, end: 1, depth: 4, nodeId: "b", hashFormatVersion: HASH_FORMAT_VERSION };
type SchemaCase = [string, DescMessage, (rng: Rng) => gen.Init<DescMessage>];
const schemaCase = <D extends DescMessage>(name: string, schema: D, make: (rng: Rng) => gen.Init<D>): SchemaCase => [
  name,
  schema,
  make as (rng: Rng) => gen.Init<DescMessage>,
];
const REQUEST_SCHEMAS: SchemaCase[] = [
  schemaCase("KVService.Get", GetRequestSchema, gen.getRequest),
  schemaCase("KVService.Put", PutRequestSchema, (rng) => gen.putRequest(rng, rng.bytes(rng.int(40)))),
  schemaCase("KVService.Delete", DeleteRequestSchema, (rng) => gen.deleteRequest(rng, rng.bytes(rng.int(40)))),
  schemaCase("ReplicaService.Write", WriteRequestSchema, gen.writeRequest),
  schemaCase("ReplicaService.Read", ReadRequestSchema, gen.readRequest),
  schemaCase("ReplicaService.Purge", PurgeRequestSchema, (rng) => ({ key: gen.anyKey(rng), record: gen.anyRecord(rng) })),
  schemaCase("ReplicaService.Reset", ResetRequestSchema, (rng) => ({ key: gen.anyKey(rng), expected: gen.anyRecord(rng), record: gen.anyRecord(rng) })),
  schemaCase("ReplicaService.Stream", StreamRequestSchema, gen.streamRequest),
  schemaCase("AntiEntropyService.Exchange", ExchangeRequestSchema, (rng) => gen.exchangeRequest(rng, OPEN)),
  schemaCase("GossipService.Send", SendRequestSchema, (rng) => gen.sendRequest(encodeMessage(validGossip(rng)))),
  schemaCase("Health.Check", HealthCheckRequestSchema, gen.healthCheckRequest),
  schemaCase("AdminService.Status", StatusRequestSchema, gen.statusRequest),
  schemaCase("AdminService.RepairKey", RepairKeyRequestSchema, (rng) => ({ key: gen.anyKey(rng) })),
  schemaCase("AdminService.Export", ExportRequestSchema, gen.exportRequest),
  schemaCase("AdminService.Import", ImportRequestSchema, gen.importRequest),
  schemaCase("ReplicaService.Scan", ScanRequestSchema, gen.scanRequest),
];

describe("protobuf decoding of every request the node takes", () => {
  it.each(REQUEST_SCHEMAS)("%s: fromBinary returns a message that round-trips, or throws an Error", (_name, schema, make) => {
    let decoded = 0;
    let refused = 0;
    fc.assert(
      fc.property(fc.nat(), (seed) => {
        const rng = new Rng(seed);
        const valid = gen.encode(schema, make(rng));
        const other = gen.encode(schema, make(rng));
        if (decodeOrThrow(schema, hostileBytes(rng, valid, other)) === undefined) refused++;
        else decoded++;
      }),
      { seed: SEED, numRuns: 300 },
    );
    expect(decoded + refused).toBe(300);
  });
});

// --- replica handlers ----------------------------------------------------------------------------

/** What LocalReplica does with a write, minus the disk: the causal merge, or a hint. */
class FakeReplica implements ReplicaStore {
  readonly sets = new Map<string, SiblingSet>();
  readonly hints: Array<{ target: string; key: string }> = [];

  async write(key: string, { set }: VersionedRecord, hintFor: string | undefined): Promise<void> {
    if (hintFor !== undefined && hintFor !== "self") {
      this.hints.push({ target: hintFor, key });
      return;
    }
    this.sets.set(key, sync(this.sets.get(key) ?? emptySet(), set));
  }

  async readRecord(key: string): Promise<StoredRecord | undefined> {
    const set = this.sets.get(key);
    return set === undefined ? undefined : { set, bytes: encodeSiblingSet(set) };
  }
}

/** Runs one decoded write or read against `store`; resolves, or rejects with a client-error ConnectError. */
async function replicaCall(store: ReplicaStore, rng: Rng): Promise<void> {
  if (rng.chance(0.6)) {
    const req = hostileMessage(rng, WriteRequestSchema, gen.writeRequest);
    if (req === undefined) return;
    await applyReplicaWrite(store, req).catch((error: unknown) => expectClientError(error, `Write ${short(req)}`));
  } else {
    const req = hostileMessage(rng, ReadRequestSchema, gen.readRequest);
    if (req === undefined) return;
    const record = await readReplicaRecord(store, req).catch((error: unknown) => {
      expectClientError(error, `Read ${short(req)}`);
      return undefined;
    });
    // What a replica answers is always a record its peers can decode.
    if (record !== undefined && record.byteLength > 0) decodeSiblingSet(record);
  }
}

describe("replica Write / Read handlers on decoded hostile requests", () => {
  let temp: TempReplica;
  let real: LocalReplica;

  beforeAll(async () => {
    // A small hint store, so that hostile hint writes fill it.
    temp = await openTempReplica({ nodeId: "self", prefix: "dynamo-fuzz-replica-", hints: { maxHints: 20 } });
    real = temp.replica;
  });

  afterAll(async () => {
    await temp?.close();
  });

  it("answer or fail with a client-error ConnectError over a fake store", async () => {
    const store = new FakeReplica();
    await fc.assert(
      fc.asyncProperty(fc.nat(), async (seed) => {
        const rng = new Rng(seed);
        for (let k = 0; k < 5; k++) await replicaCall(store, rng);
      }),
      { seed: SEED + 1, numRuns: 400 },
    );
    expect(store.sets.size).toBeGreaterThan(0);
  });

  it("answer or fail with a client-error ConnectError over a real LocalReplica (storage and hint store)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(), async (seed) => {
        const rng = new Rng(seed);
        for (let k = 0; k < 3; k++) await replicaCall(real, rng);
      }),
      { seed: SEED + 2, numRuns: 300 },
    );
  });
});

describe("replica Stream server on decoded hostile batches", () => {
  type Batch = MessageInitShape<typeof StreamResponseSchema>;

  // Forwarded writes go to a real Coordinator over in-process replicas (coordinator-bench.ts).
  const cluster = new CoordinatorBench({ nodes: ["n1", "n2", "n3"], self: "n1" });
  const coordinate = coordinateForwarded(cluster.coordinator, 5_000);

  async function serve(store: ReplicaStore, batches: StreamRequest[]): Promise<Batch[]> {
    async function* requests() {
      for (const batch of batches) yield batch;
    }
    const abort = new AbortController();
    const out: Batch[] = [];
    const timer = setTimeout(() => abort.abort(), 5_000);
    try {
      for await (const batch of serveReplicaStream(store, requests(), abort.signal, undefined, coordinate)) out.push(batch);
    } finally {
      clearTimeout(timer);
    }
    if (abort.signal.aborted) throw new Error(`the stream did not end within 5 s after its input ended (${short(batches)})`);
    return out;
  }

  it("answers every op with a result or a client-error ReplicaError, and ends when the input does", async () => {
    const store = new FakeReplica();
    await fc.assert(
      fc.asyncProperty(fc.nat(), async (seed) => {
        const rng = new Rng(seed);
        const batches: StreamRequest[] = [];
        for (let k = 0; k < 1 + rng.int(4); k++) {
          const batch = hostileMessage(rng, StreamRequestSchema, gen.streamRequest);
          if (batch !== undefined) batches.push(batch);
        }
        const sent = batches.reduce((sum, b) => sum + b.ops.length, 0);
        const results = (await serve(store, batches)).flatMap((b) => b.results ?? []);
        expect(results).toHaveLength(sent);
        for (const result of results) {
          const body = result.result;
          if (body?.case === "error") {
            const code = body.value.code as Code;
            if (!CLIENT_CODES.has(code)) throw new Error(`a replica op answered ${Code[code]} (${body.value.message}) in ${short(batches)}`);
          } else if (body?.case === "coordinate") {
            expect(body.value.context?.byteLength ?? 0).toBeGreaterThan(0);
          } else if (body?.case === "read" && body.value.record !== undefined && body.value.record.byteLength > 0) {
            decodeSiblingSet(body.value.record);
          }
        }
      }),
      { seed: SEED + 3, numRuns: 300 },
    );
  });
});

/** A fresh Membership (its own state, so a failing input replays alone), as a node of a two-node cluster holds it. */
function newMembership(dataDir: string): Membership {
  return new Membership(
    { nodeId: "self", address: "127.0.0.1:1", dataDir, vnodes: 8, initialMembers: [{ id: "n1", address: "127.0.0.1:2" }], seeds: [], swim: {} },
    async () => {},
    new Metrics(),
    jsonLogger("self", () => {}),
  );
}

// --- ReplicaService and GossipService as the node registers them -----------------------------------

describe("ReplicaService and GossipService handlers (registerServices) through the Connect router", () => {
  const SECRET = "fuzz-cluster-secret-0123456789";
  let temp: TempReplica;
  let membership: Membership;
  let replicaClient: Client<typeof ReplicaService>;
  let gossipClient: Client<typeof GossipService>;

  beforeAll(async () => {
    temp = await openTempReplica({ nodeId: "self", prefix: "dynamo-fuzz-services-" });
    const { replica } = temp;
    membership = newMembership(join(temp.dir, "gossip"));
    const limits = messageLimits({ maxKeyBytes: 256, maxValueBytes: 1024 * 1024, maxRecordBytes: 4 * 1024 * 1024 });
    // Only what ReplicaService and GossipService use; the other services are registered but not called.
    const state = {
      nodeId: "self",
      clusterSecret: SECRET,
      defaultTimeoutMs: 5_000,
      replica,
      draining: new AbortController().signal,
      gossip: (bytes: Uint8Array) => membership.receive(bytes),
      limits,
    } as unknown as ServiceState;
    const addSecret: Interceptor = (next) => (req) => {
      req.header.set(CLUSTER_SECRET_HEADER, SECRET);
      return next(req);
    };
    const transport = createRouterTransport((router) => registerServices(router, state), { transport: { interceptors: [addSecret] } });
    replicaClient = createClient(ReplicaService, transport);
    gossipClient = createClient(GossipService, transport);
  });

  afterAll(async () => {
    await temp?.close();
  });

  it("Write / Read / Purge / Reset / Scan answer or fail with a client-error code", async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(), async (seed) => {
        const rng = new Rng(seed);
        const call = async (what: string, run: () => Promise<unknown>) => run().catch((error: unknown) => expectClientError(error, what));
        switch (rng.int(5)) {
          case 0: {
            const req = hostileMessage(rng, WriteRequestSchema, gen.writeRequest);
            if (req) await call(`Write ${short(req)}`, () => replicaClient.write(req));
            break;
          }
          case 1: {
            const req = hostileMessage(rng, ReadRequestSchema, gen.readRequest);
            if (req) await call(`Read ${short(req)}`, () => replicaClient.read(req));
            break;
          }
          case 2: {
            const req = hostileMessage(rng, PurgeRequestSchema, (r) => ({ key: gen.anyKey(r), record: gen.anyRecord(r) }));
            if (req) await call(`Purge ${short(req)}`, () => replicaClient.purge(req));
            break;
          }
          case 3: {
            const req = hostileMessage(rng, ResetRequestSchema, (r) => ({ key: gen.anyKey(r), expected: gen.anyRecord(r), record: gen.anyRecord(r) }));
            if (req) await call(`Reset ${short(req)}`, () => replicaClient.reset(req));
            break;
          }
          default: {
            const req = hostileMessage(rng, ScanRequestSchema, gen.scanRequest);
            if (req) await call(`Scan ${short(req)}`, () => replicaClient.scan(req));
          }
        }
      }),
      { seed: SEED + 6, numRuns: 400 },
    );
  });

  it("GossipService.Send answers OK or a client-error code, whatever the gossip bytes", async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(), async (seed) => {
        const rng = new Rng(seed);
        // A data dir per case: gossip may tell the node it was removed, which it persists.
        membership = newMembership(mkdtempSync(join(temp.dir, "gossip-")));
        const req = hostileMessage(rng, SendRequestSchema, (r) => gen.sendRequest(encodeMessage(validGossip(r))));
        if (req) await gossipClient.send(req).catch((error: unknown) => expectClientError(error, `Send ${Buffer.from(req.message).toString("hex")}`));
      }),
      { seed: SEED + 7, numRuns: 500 },
    );
  });
});

// --- the anti-entropy responder through the Connect router ---------------------------------------

describe("anti-entropy responder on hostile exchange streams", () => {
  const SECRET = "fuzz-cluster-secret-0123456789";
  let temp: TempReplica;
  let antiEntropy: AntiEntropy;
  let client: Client<typeof AntiEntropyService>;
  let open: typeof OPEN;

  beforeAll(async () => {
    const ring = new Ring(["a", "b", "c"], { vnodes: 8 });
    temp = await openTempReplica({ nodeId: "a", prefix: "dynamo-fuzz-ae-" });
    const { storage, metrics, replica } = temp;
    // Some keys, so that leaves and fetches have something to return.
    const rng = new Rng(SEED);
    for (let i = 0; i < 200; i++) await replica.apply(`fuzz-${i}`, gen.anySiblingSet(rng));
    antiEntropy = new AntiEntropy(
      { nodeId: "a", n: 2, intervalMs: 0, keysPerSecond: 1_000_000, bytesPerSecond: 1 << 30, tombstoneGraceMs: 60_000, maxMessageBytes: 1 << 20 },
      {
        ring: () => ring,
        storage,
        replica,
        client: () => {
          throw new Error("the responder under test initiates nothing");
        },
        replicas: { endpoint: () => replica, isAvailable: () => false },
        metrics,
        log: jsonLogger("a", () => {}),
        now: () => Date.now(),
        random: () => 0.5,
      },
    );
    antiEntropy.start();
    await antiEntropy.whenReady();
    const [first] = replicaRanges(ring, "a", 2);
    const peer = first!.replicas.find((id) => id !== "a")!;
    open = { start: first!.range.start, end: first!.range.end, depth: treeDepthFor(first!.range), nodeId: peer, hashFormatVersion: HASH_FORMAT_VERSION };
    const addSecret: Interceptor = (next) => (req) => {
      req.header.set(CLUSTER_SECRET_HEADER, SECRET);
      return next(req);
    };
    const transport = createRouterTransport(
      (router) =>
        router.service(
          AntiEntropyService,
          antiEntropyService(antiEntropy, (ctx) => requireInternal(ctx, SECRET)),
        ),
      {
        transport: { interceptors: [addSecret] },
      },
    );
    client = createClient(AntiEntropyService, transport);
  });

  afterAll(async () => {
    await antiEntropy?.stop();
    await temp?.close();
  });

  async function exchange(requests: ExchangeRequest[]): Promise<ExchangeResponse[]> {
    async function* stream() {
      yield* requests;
    }
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 10_000);
    const answers: ExchangeResponse[] = [];
    try {
      for await (const answer of client.exchange(stream(), { signal: abort.signal })) answers.push(answer);
    } catch (error) {
      if (abort.signal.aborted) throw new Error(`the exchange did not end within 10 s: ${short(requests)}`, { cause: error });
      expectClientError(error, `exchange ${short(requests)}`);
    } finally {
      clearTimeout(timer);
    }
    return answers;
  }

  it("answers every sequence of decoded requests or ends it with a client-error ConnectError", async () => {
    const answered = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(fc.nat(), async (seed) => {
        const rng = new Rng(seed);
        const requests: ExchangeRequest[] = [];
        // Mostly starting with the open a responder accepts, so the later steps reach the tree.
        if (rng.chance(0.8))
          requests.push(
            fromBinary(
              ExchangeRequestSchema,
              gen.encode(ExchangeRequestSchema, {
                step: {
                  case: "open",
                  value: { range: { start: open.start, end: open.end }, depth: open.depth, hashFormatVersion: open.hashFormatVersion, nodeId: open.nodeId },
                },
              }),
            ),
          );
        for (let k = 0; k < 1 + rng.int(5); k++) {
          const request = hostileMessage(rng, ExchangeRequestSchema, (r) => gen.exchangeRequest(r, open));
          if (request !== undefined) requests.push(request);
        }
        for (const answer of await exchange(requests)) answered.set(answer.step.case ?? "none", (answered.get(answer.step.case ?? "none") ?? 0) + 1);
      }),
      { seed: SEED + 4, numRuns: 150 },
    );
    // Not vacuous: every kind of step got past open and was answered some of the time.
    expect([...answered.keys()].sort()).toEqual(["fetched", "leafEntries", "nodeHashes", "opened", "pushed"]);
  });
});

// --- gossip bytes through Membership --------------------------------------------------------------

describe("GossipService.Send bytes through Membership.receive", () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "dynamo-fuzz-gossip-"));
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("never throws on mutated gossip, on receipt or in the timer that follows (a throw answers Send with Internal; in the timer it ends the process)", () => {
    fc.assert(
      fc.property(fc.nat(), (seed) => {
        const rng = new Rng(seed);
        // A data dir per case: gossip may tell the node it was removed, which it persists.
        const membership = newMembership(mkdtempSync(join(dir, "m-")));
        const valid = encodeMessage(validGossip(rng));
        const bytes = rng.chance(0.3) ? valid : hostileBytes(rng, valid, encodeMessage(validGossip(rng)));
        try {
          membership.receive(bytes);
          // What the gossip timer does next (Membership.schedule): tick, then encode and send what it returns.
          for (let k = 1; k <= 3; k++) for (const { message } of membership.swim.tick(Date.now() + k * 2_000)) encodeMessage(message);
        } catch (error) {
          throw new Error(`gossip ${Buffer.from(bytes).toString("hex")} made the node throw: ${(error as Error).message}`, { cause: error });
        }
      }),
      { seed: SEED + 5, numRuns: 1000 },
    );
  });
});
