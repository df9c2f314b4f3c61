// Anti-entropy: whole exchanges between nodes in one process (real storage, the real Connect
// router; no sockets), through the scheduler, both sides of the exchange and the service.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, Code, ConnectError, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { HintStore } from "@dynamo-ts/hintstore";
import { HASH_FORMAT_VERSION, MerkleTree } from "@dynamo-ts/merkle";
import { AntiEntropyService, CLUSTER_SECRET_HEADER, type ExchangeRequestSchema, type ExchangeResponse } from "@dynamo-ts/proto";
import { replicaRanges, Ring, TOKEN_SPACE } from "@dynamo-ts/ring";
import { Storage } from "@dynamo-ts/storage";
import { encodeSiblingSet, type SiblingSet, update } from "@dynamo-ts/vclock";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AntiEntropy } from "./anti-entropy.js";
import { treeDepthFor } from "./ranges.js";
import { antiEntropyService } from "./service.js";
import { jsonLogger } from "../../observability/log.js";
import { Metrics } from "../../observability/metrics.js";
import { LocalReplica } from "../../local/replica.js";
import { requireInternal } from "../../rpc/services.js";

const bytes = (text: string) => new TextEncoder().encode(text);

// --- exchanges between nodes in one process ----------------------------------------------------

const SECRET = "unit-test-cluster-secret-0123";
const GRACE_MS = 60_000;

interface TestNode {
  readonly id: string;
  readonly storage: Storage;
  readonly hints: HintStore;
  readonly replica: LocalReplica;
  readonly metrics: Metrics;
  readonly logs: string[];
  antiEntropy: AntiEntropy;
}

class InProcessCluster {
  readonly nodes = new Map<string, TestNode>();
  ring: Ring;
  now = 1_700_000_000_000;

  constructor(
    readonly dir: string,
    ids: readonly string[],
    readonly n: number,
  ) {
    this.ring = new Ring(ids, { vnodes: 8 });
  }

  /** Opens node `id`; `onDisk` writes to its store before its anti-entropy exists (data found at start). */
  async open(id: string, onDisk?: (storage: Storage) => Promise<void>): Promise<TestNode> {
    const storage = await Storage.open(join(this.dir, id, "data"));
    await onDisk?.(storage);
    const hints = await HintStore.open(join(this.dir, id, "hints"), { ttlMs: 60_000 });
    const metrics = new Metrics();
    const replica = new LocalReplica(id, storage, hints, "siblings", metrics);
    const logs: string[] = [];
    const node: TestNode = { id, storage, hints, replica, metrics, logs, antiEntropy: undefined as never };
    node.antiEntropy = new AntiEntropy(
      { nodeId: id, n: this.n, intervalMs: 0, keysPerSecond: 1_000_000, bytesPerSecond: 1 << 30, tombstoneGraceMs: GRACE_MS, maxMessageBytes: 1 << 20 },
      {
        ring: () => this.ring,
        storage,
        replica,
        client: (peer) => this.client(peer, SECRET),
        replicas: { endpoint: (peer) => this.nodes.get(peer)!.replica, isAvailable: () => true },
        metrics,
        log: jsonLogger(id, (line) => logs.push(line)),
        now: () => this.now,
        random: () => 0.5,
      },
    );
    this.nodes.set(id, node);
    return node;
  }

  /** A client of `peer`'s AntiEntropyService through the Connect router (messages are serialized). */
  client(peer: string, secret: string | undefined): Client<typeof AntiEntropyService> {
    const addSecret: Interceptor = (next) => (req) => {
      if (secret !== undefined) req.header.set(CLUSTER_SECRET_HEADER, secret);
      return next(req);
    };
    const transport = createRouterTransport((router) => router.service(AntiEntropyService, antiEntropyServiceFor(this.nodes.get(peer)!.antiEntropy)), {
      transport: { interceptors: [addSecret] },
    });
    return createClient(AntiEntropyService, transport);
  }

  node(id: string): TestNode {
    return this.nodes.get(id)!;
  }

  async close(): Promise<void> {
    for (const node of this.nodes.values()) {
      await node.antiEntropy.stop();
      await node.storage.close();
      await node.hints.close();
    }
  }
}

function antiEntropyServiceFor(antiEntropy: AntiEntropy) {
  return antiEntropyService(antiEntropy, (ctx) => requireInternal(ctx, SECRET));
}

/** Sends `requests` on one Exchange stream and collects the answers. */
async function exchange(client: Client<typeof AntiEntropyService>, requests: MessageInitShape<typeof ExchangeRequestSchema>[]): Promise<ExchangeResponse[]> {
  async function* stream() {
    yield* requests;
  }
  const answers: ExchangeResponse[] = [];
  for await (const answer of client.exchange(stream())) answers.push(answer);
  return answers;
}

function written(node: string, value: string | null, timestamp: number, base?: SiblingSet): SiblingSet {
  return update(base, base?.clock ?? new Map(), node, value === null ? null : bytes(value), timestamp);
}

async function storedBytes(storage: Storage): Promise<Map<string, string>> {
  const all = new Map<string, string>();
  for await (const { key, set } of storage.scan()) all.set(key, Buffer.from(encodeSiblingSet(set)).toString("hex"));
  return all;
}

describe("exchanges between nodes (in process)", () => {
  let dir: string;
  let cluster: InProcessCluster;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "dynamo-ae-unit-"));
  });
  afterEach(async () => {
    await cluster?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("makes two diverged replicas identical, moving only the keys that differ", async () => {
    cluster = new InProcessCluster(dir, ["a", "b"], 2);
    const a = await cluster.open("a");
    const b = await cluster.open("b");
    const t = cluster.now;
    for (let i = 0; i < 300; i++) {
      const set = written("a", `same-${i}`, t);
      await a.replica.apply(`same-${i}`, set);
      await b.replica.apply(`same-${i}`, set);
    }
    for (let i = 0; i < 30; i++) await a.replica.apply(`only-a-${i}`, written("a", `a-${i}`, t));
    for (let i = 0; i < 25; i++) await b.replica.apply(`only-b-${i}`, written("b", `b-${i}`, t));
    for (let i = 0; i < 20; i++) {
      // b saw a later write; and concurrent writes on each side that must both survive.
      const first = written("a", `v1-${i}`, t);
      await a.replica.apply(`newer-${i}`, first);
      await b.replica.apply(`newer-${i}`, written("b", `v2-${i}`, t + 1, first));
      await a.replica.apply(`concurrent-${i}`, written("a", `ca-${i}`, t));
      await b.replica.apply(`concurrent-${i}`, written("b", `cb-${i}`, t));
    }
    for (const node of [a, b]) node.antiEntropy.start();
    await Promise.all([a, b].map((node) => node.antiEntropy.whenReady()));

    const { exchanges } = await a.antiEntropy.repair();
    expect(exchanges).toHaveLength(1);
    const [only] = exchanges;
    expect(only).toMatchObject({ peer: "b", outcome: "repaired", keysFetched: 25 + 20 + 20, keysPushed: 30 + 20 + 20, keysWithheld: 0 });
    // Repaired: b's 25 and a's 30 missing keys, 20 newer keys on a, both sides of 20 concurrent keys.
    expect(only!.keysRepaired).toBe(25 + 30 + 20 + 2 * 20);
    expect(await storedBytes(a.storage)).toEqual(await storedBytes(b.storage));
    const concurrent = (await a.storage.get("concurrent-3"))!;
    expect(concurrent.siblings.map((s) => new TextDecoder().decode(s.value!)).sort()).toEqual(["ca-3", "cb-3"]);

    // Converged: the next exchanges, from either side, compare one root and move nothing.
    for (const node of [a, b]) {
      const again = await node.antiEntropy.repair();
      expect(again.exchanges.map((e) => [e.outcome, e.hashesCompared, e.keysFetched + e.keysPushed])).toEqual([["in-sync", 1, 0]]);
    }
    const status = a.antiEntropy.status();
    expect(status.ready).toBe(true);
    expect(status.ranges).toHaveLength(1);
    expect(status.ranges[0]).toMatchObject({ peers: ["b"], keys: 300 + 30 + 25 + 40, treeDepth: 14, exchanges: 2, lastPeer: "b", lastOutcome: "in-sync" });
    expect(a.metrics.get("anti_entropy_keys_repaired")).toBe(only!.keysRepaired);
  });

  it("builds the trees from storage and keeps them current through every change, including changes during the build", async () => {
    cluster = new InProcessCluster(dir, ["a", "b"], 2);
    // The same history lands on both, on a partly before its anti-entropy exists (on disk at start)...
    const history: Array<[string, SiblingSet]> = [];
    for (let i = 0; i < 200; i++) history.push([`k-${i}`, written("a", `v-${i}`, cluster.now)]);
    for (let i = 0; i < 50; i++) history.push([`k-${i}`, written("a", `w-${i}`, cluster.now + 1, history[i]![1])]);
    const a = await cluster.open("a", async (storage) => {
      for (const [key, set] of history.slice(0, 150)) await storage.merge(key, set);
    });
    const b = await cluster.open("b");
    for (const [key, set] of history) await b.replica.apply(key, set);
    // ...the rest through the replica while the build runs, and a purge of a tombstone-only key.
    a.antiEntropy.start();
    b.antiEntropy.start();
    await b.antiEntropy.whenReady();
    await Promise.all(history.slice(150).map(([key, set]) => a.replica.apply(key, set)));
    const tombstone = written("a", null, cluster.now, history[199]![1]);
    for (const node of [a, b]) {
      await node.replica.apply("k-199", tombstone);
      expect(await node.replica.purge("k-199", encodeSiblingSet(tombstone))).toBe(true);
    }

    const { exchanges } = await a.antiEntropy.repair();
    expect(exchanges.map((e) => [e.outcome, e.hashesCompared])).toEqual([["in-sync", 1]]);
    expect(a.antiEntropy.status().ranges[0]!.keys).toBe(199);
  });

  it("refuses to compare across hash formats, depths, ranges or with a node that is not a replica", async () => {
    cluster = new InProcessCluster(dir, ["a", "b", "c"], 2);
    const a = await cluster.open("a");
    a.antiEntropy.start();
    await a.antiEntropy.repair(); // waits for the trees
    const [first] = replicaRanges(cluster.ring, "a", 2);
    const { range, replicas } = first!;
    const peer = replicas.find((id) => id !== "a")!;
    const outsider = ["a", "b", "c"].find((id) => !replicas.includes(id))!;
    const depth = treeDepthFor(range);
    const open = (overrides: object) => ({
      step: { case: "open" as const, value: { range, depth, hashFormatVersion: HASH_FORMAT_VERSION, nodeId: peer, ...overrides } },
    });
    const client = cluster.client("a", SECRET);
    const answers = await exchange(client, [
      open({}),
      open({ hashFormatVersion: HASH_FORMAT_VERSION + 1 }),
      open({ depth: depth + 1 }),
      open({ range: { start: range.start, end: (range.end + 1) % TOKEN_SPACE } }),
      open({ nodeId: outsider }),
    ]);
    const opened = answers.map((r) => (r.step.case === "opened" ? r.step.value : undefined));
    expect(opened[0]).toMatchObject({ accepted: true, keyCount: 0n });
    expect(opened[0]!.root).toEqual(new MerkleTree(range, { depth }).root());
    expect(opened.slice(1).map((o) => [o?.accepted, o?.reason])).toEqual([
      [false, expect.stringMatching(/hash format 2 differs from this node's 1/)],
      [false, expect.stringMatching(new RegExp(`depth ${depth + 1} differs`))],
      [false, expect.stringMatching(/no tree for range/)],
      [false, expect.stringMatching(new RegExp(`${outsider} is not a replica`))],
    ]);
  });

  it("answers only callers with the cluster secret, and only after a range was opened", async () => {
    cluster = new InProcessCluster(dir, ["a", "b"], 2);
    const a = await cluster.open("a");
    a.antiEntropy.start();
    const query = { step: { case: "nodeHashes" as const, value: { level: 1, indices: [0, 1] } } };
    const codeOf = async (promise: Promise<unknown>) =>
      promise.then(
        () => "ok",
        (err: unknown) => Code[ConnectError.from(err).code],
      );
    expect(await codeOf(exchange(cluster.client("a", undefined), [query]))).toBe("PermissionDenied");
    expect(await codeOf(exchange(cluster.client("a", "wrong-secret-0123456789"), [query]))).toBe("PermissionDenied");
    expect(await codeOf(exchange(cluster.client("a", SECRET), [query]))).toBe("FailedPrecondition");
  });

  it("withholds an old key only one replica holds (a purged delete?), and copies it once another replica confirms it", async () => {
    cluster = new InProcessCluster(dir, ["a", "b", "c"], 3);
    const a = await cluster.open("a");
    const b = await cluster.open("b");
    const c = await cluster.open("c");
    const old = cluster.now - GRACE_MS;
    const zombie = written("x", "stale", old);
    await a.replica.apply("zombie", zombie);
    await a.replica.apply("old-tombstone", written("x", null, old));
    await a.replica.apply("young", written("x", "fresh", cluster.now - 1_000));
    for (const node of [a, b, c]) node.antiEntropy.start();
    await Promise.all([a, b, c].map((node) => node.antiEntropy.whenReady()));

    const first = await a.antiEntropy.repair();
    expect(first.exchanges.map((e) => [e.peer, e.keysWithheld, e.keysPushed])).toEqual([
      ["b", 1, 2],
      ["c", 1, 2],
    ]);
    for (const node of [b, c]) {
      expect(await node.storage.get("zombie")).toBeUndefined();
      expect(await node.storage.get("old-tombstone")).toBeDefined();
      expect(await node.storage.get("young")).toBeDefined();
    }
    // From the side that lacks it too (b fetches, asks c, withholds), and the warning says why.
    expect((await b.antiEntropy.repair()).exchanges.find((e) => e.peer === "a")!.keysWithheld).toBe(1);
    expect(await b.storage.get("zombie")).toBeUndefined();
    expect(a.logs.some((line) => line.includes("withheld an old key"))).toBe(true);

    // c gets the same version by other means: now a second replica vouches for it.
    await c.replica.apply("zombie", zombie);
    cluster.now += 11 * 60_000; // past the time a withheld key is left alone
    const second = await a.antiEntropy.repair();
    expect(second.exchanges.map((e) => [e.peer, e.outcome, e.keysWithheld])).toEqual([
      ["b", "repaired", 0],
      ["c", "in-sync", 0],
    ]);
    expect(await b.storage.get("zombie")).toBeDefined();
  });

  it("rebuilds its trees when the ring changes, and exchanges over the new ranges", async () => {
    cluster = new InProcessCluster(dir, ["a", "b"], 2);
    const a = await cluster.open("a");
    const b = await cluster.open("b");
    for (let i = 0; i < 100; i++) await a.replica.apply(`k-${i}`, written("a", `v-${i}`, cluster.now));
    for (const node of [a, b]) node.antiEntropy.start();
    await Promise.all([a, b].map((node) => node.antiEntropy.whenReady()));
    await a.antiEntropy.repair();
    expect(a.antiEntropy.status().ranges).toHaveLength(1);

    cluster.ring = new Ring(["a", "b", "c"], { vnodes: 8 });
    const c = await cluster.open("c");
    c.antiEntropy.start();
    a.antiEntropy.ringChanged();
    b.antiEntropy.ringChanged();
    // Until a peer has rebuilt its trees it refuses (its ranges are not the new ones yet).
    await Promise.all([a, b, c].map((node) => node.antiEntropy.whenReady()));
    const { exchanges } = await a.antiEntropy.repair();
    const ranges = replicaRanges(cluster.ring, "a", 2);
    expect(a.antiEntropy.status().ranges.map((r) => r.range)).toEqual(ranges.map((r) => r.range));
    const mine = (key: string) => cluster.ring.preferenceList(key, 2).includes("a");
    expect(a.antiEntropy.status().ranges.reduce((sum, r) => sum + r.keys, 0)).toBe(Array.from({ length: 100 }, (_, i) => `k-${i}`).filter(mine).length);
    expect(exchanges.length).toBe(ranges.length);
    expect(exchanges.every((e) => e.outcome !== "failed" && e.outcome !== "refused")).toBe(true);
    // c now holds the keys it shares with a.
    for (let i = 0; i < 100; i++) {
      const key = `k-${i}`;
      const replicas = cluster.ring.preferenceList(key, 2);
      if (replicas.includes("a") && replicas.includes("c")) expect(await c.storage.get(key)).toBeDefined();
    }
  });
});
