// DynamoNode composes the pure parts (ring, vclock, quorum) with the I/O edges (storage,
// hints, peers, the listener). It owns every socket, file and timer of a node.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { HintStore } from "@dynamo-ts/hintstore";
import { Ring } from "@dynamo-ts/ring";
import { Storage } from "@dynamo-ts/storage";
import type { NodeConfig } from "./config.js";
import { Coordinator, type ReplicaEndpoint } from "./coordinator.js";
import { RpcFailureDetector } from "./failure-detector.js";
import { HintDelivery } from "./handoff.js";
import { DualProtocolListener } from "./listener.js";
import { type Logger, jsonLogger } from "./log.js";
import { Metrics } from "./metrics.js";
import { PeerPool } from "./peers.js";
import { LocalReplica } from "./replica.js";
import { registerServices } from "./services.js";
import { TombstoneCollector } from "./tombstones.js";
import { VERSION } from "./version.js";

export class StartupError extends Error {
  override name = "StartupError";
}

export class DynamoNode {
  readonly metrics = new Metrics();
  readonly detector: RpcFailureDetector;
  private readonly startedAt = Date.now();
  private ring: Ring;
  private readonly peers: PeerPool;
  private readonly replica: LocalReplica;
  readonly handoff: HintDelivery;
  readonly tombstones: TombstoneCollector;
  private listener: DualProtocolListener | undefined;
  private servingNow = false;
  private readonly servingListeners = new Set<() => void>();
  private stopping: Promise<void> | undefined;
  private probeTimer: NodeJS.Timeout | undefined;

  private constructor(
    readonly config: NodeConfig,
    private readonly storage: Storage,
    private readonly hints: HintStore,
    readonly log: Logger,
  ) {
    this.ring = new Ring(config.peers.map((p) => p.id), { vnodes: config.vnodes });
    this.detector = new RpcFailureDetector({ retryAfterMs: 1000 }, Date.now);
    const addresses = new Map(config.peers.map((p) => [p.id, p.address]));
    this.peers = new PeerPool(config.clusterSecret, (node) => addresses.get(node));
    this.replica = new LocalReplica(config.nodeId, storage, hints, config.resolution, this.metrics);
    this.handoff = new HintDelivery(
      hints,
      (hint) => this.observe(hint.target, this.peers.deliverHint(hint.target, hint.key, hint.record, 5_000)),
      { intervalMs: config.hintIntervalMs, batchSize: 64, backoff: { baseMs: 500, maxMs: 30_000 } },
      this.metrics,
      log,
    );
    // A node seen again gets its hints at once rather than at the next backoff step.
    this.detector.onUp((node) => this.handoff.trigger(node));
    this.tombstones = new TombstoneCollector(
      { nodeId: config.nodeId, n: config.n, graceMs: config.tombstoneGraceMs, intervalMs: config.tombstoneSweepIntervalMs, maxPerSweep: 10_000 },
      storage,
      () => this.ring,
      (node) => this.endpoint(node),
      (node, key, record) => (node === config.nodeId ? this.replica.purge(key, record) : this.observe(node, this.peers.purge(node, key, record, 5_000))),
      this.metrics,
      log,
    );
  }

  /** Feeds a peer call's outcome to the failure detector. */
  private observe<T>(node: string, call: Promise<T>): Promise<T> {
    return call.then(
      (value) => {
        this.detector.recordSuccess(node);
        return value;
      },
      (err: unknown) => {
        if (isUnreachable(err)) this.detector.recordFailure(node);
        else this.detector.recordSuccess(node);
        throw err;
      },
    );
  }

  static async open(config: NodeConfig, log: Logger = jsonLogger(config.nodeId)): Promise<DynamoNode> {
    try {
      mkdirSync(config.dataDir, { recursive: true });
    } catch (err) {
      throw new StartupError(`cannot create data directory ${config.dataDir}: ${(err as Error).message}`);
    }
    const storage = await openOrExplain("data", () => Storage.open(join(config.dataDir, "data"), { sync: config.sync }));
    let hints: HintStore;
    try {
      hints = await openOrExplain("hints", () => HintStore.open(join(config.dataDir, "hints"), { sync: config.sync, ttlMs: config.hintTtlMs }));
    } catch (err) {
      await storage.close();
      throw err;
    }
    return new DynamoNode(config, storage, hints, log);
  }

  /** The local store for self, a peer over RPC otherwise; peer outcomes feed the failure detector. */
  endpoint(node: string): ReplicaEndpoint {
    if (node === this.config.nodeId) return this.replica;
    const remote = this.peers.endpoint(node);
    return {
      write: (key, set, encoded, hintFor, signal) => this.observe(node, remote.write(key, set, encoded, hintFor, signal)),
      read: (key, signal) => this.observe(node, remote.read(key, signal)),
    };
  }

  async start(): Promise<{ port: number; host: string }> {
    const { config } = this;
    const coordinator = new Coordinator({
      options: config,
      ring: () => this.ring,
      endpoint: (node) => this.endpoint(node),
      isAvailable: (node) => node === config.nodeId || this.detector.isAvailable(node),
      random: Math.random,
      updateLocal: (key, fn) => this.replica.update(key, fn),
      forwardWrite: (node, args) => this.peers.forwardWrite(node, args),
      now: Date.now,
      metrics: this.metrics,
    });
    const handler = connectNodeAdapter({
      routes: (router) =>
        registerServices(router, {
          nodeId: config.nodeId,
          clusterSecret: config.clusterSecret,
          defaultTimeoutMs: config.requestTimeoutMs,
          coordinator,
          replica: this.replica,
          serving: () => this.servingNow,
          onServingChange: (listener) => {
            this.servingListeners.add(listener);
            return () => this.servingListeners.delete(listener);
          },
          status: () => this.status(),
          hints: () => this.hintsStatus(),
        }),
      // Room for the largest value plus protobuf framing; larger bodies are refused before
      // they are buffered. Values over the limit but under this get a clear InvalidArgument.
      readMaxBytes: config.maxValueBytes + config.maxKeyBytes + 64 * 1024,
      fallback: (req, res) => {
        if (req.url === "/healthz" && (req.method === "GET" || req.method === "HEAD")) {
          res.writeHead(this.servingNow ? 200 : 503, { "content-type": "text/plain" });
          res.end(this.servingNow ? "ok\n" : "shutting down\n");
          return;
        }
        res.writeHead(404, { "content-type": "text/plain" });
        res.end("not found: this port serves dynamo.v1.KVService over Connect, gRPC and gRPC-Web\n");
      },
    });
    this.listener = new DualProtocolListener(handler);
    const [host, portText] = splitHostPort(config.listen);
    let address;
    try {
      address = await this.listener.listen(Number(portText), host);
    } catch (err) {
      throw new StartupError(`cannot listen on ${config.listen}: ${(err as Error).message}`);
    }
    this.setServing(true);
    if (config.hintedHandoff) this.handoff.start();
    // Until membership gossip runs, peers marked down are health-checked here so that they
    // are seen again (as fallbacks, and to trigger hint delivery) without waiting for traffic.
    this.probeTimer = setInterval(() => {
      for (const peer of config.peers) {
        if (peer.id === config.nodeId || this.detector.health(peer.id) === "up") continue;
        this.observe(peer.id, this.peers.probe(peer.id, 1_000)).catch(() => {});
      }
    }, 500);
    this.probeTimer.unref();
    this.tombstones.start();
    this.log.info("listening", {
      listen: `${address.address}:${address.port}`,
      advertise: config.advertise,
      peers: config.peers.map((p) => `${p.id}@${p.address}`),
      n: config.n,
      r: config.r,
      w: config.w,
      version: VERSION,
    });
    return { host: address.address, port: address.port };
  }

  private setServing(serving: boolean): void {
    this.servingNow = serving;
    for (const listener of [...this.servingListeners]) listener();
  }

  status() {
    const ownership = this.ring.ownership();
    const now = Date.now();
    return {
      nodeId: this.config.nodeId,
      n: this.config.n,
      r: this.config.r,
      w: this.config.w,
      vnodes: this.config.vnodes,
      version: VERSION,
      uptimeMs: BigInt(now - this.startedAt),
      counters: Object.fromEntries(Object.entries(this.metrics.snapshot()).map(([k, v]) => [k, BigInt(v)])),
      members: this.config.peers.map((p) => {
        const self = p.id === this.config.nodeId;
        const heard = this.detector.lastHeardAt(p.id);
        return {
          nodeId: p.id,
          address: p.address,
          state: self || this.detector.health(p.id) === "up" ? "alive" : "suspect",
          incarnation: 0n,
          lastHeardMs: BigInt(self || heard === undefined ? 0 : now - heard),
          ownership: ownership.get(p.id) ?? 0,
        };
      }),
    };
  }

  hintsStatus() {
    const now = Date.now();
    const counters = this.hints.counters();
    return {
      targets: this.hints.targets().map((t) => ({
        nodeId: t.target,
        count: BigInt(t.count),
        oldestAgeMs: BigInt(Math.max(0, now - t.oldestCreatedAt)),
        newestAgeMs: BigInt(Math.max(0, now - t.newestCreatedAt)),
        consecutiveFailures: this.handoff.schedule.failures(t.target),
        nextAttemptInMs: BigInt(this.handoff.schedule.nextAttemptIn(t.target, now)),
      })),
      stored: BigInt(counters.stored),
      delivered: BigInt(counters.delivered),
      expired: BigInt(counters.expired),
      failed: BigInt(counters.failed),
    };
  }

  /** Graceful stop: refuse new work, finish in-flight requests (bounded), close stores. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.setServing(false);
      this.log.info("stopping", { graceMs: this.config.shutdownGraceMs });
      clearInterval(this.probeTimer);
      await this.listener?.close(this.config.shutdownGraceMs);
      await this.handoff.stop();
      await this.tombstones.stop();
      this.peers.close();
      await this.storage.close();
      await this.hints.close();
      this.log.info("stopped");
    })();
    return this.stopping;
  }
}

/** A peer that could not be reached or did not answer in time, as opposed to one that answered with an error. */
export function isUnreachable(err: unknown): boolean {
  const ce = ConnectError.from(err);
  return ce.code === Code.Unavailable || ce.code === Code.DeadlineExceeded || ce.code === Code.Canceled;
}

function splitHostPort(hostPort: string): [string, string] {
  const i = hostPort.lastIndexOf(":");
  return [hostPort.slice(0, i).replace(/^\[(.*)\]$/, "$1"), hostPort.slice(i + 1)];
}

async function openOrExplain<T>(what: string, open: () => Promise<T>): Promise<T> {
  try {
    return await open();
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    if ((err as { code?: string }).code === "LEVEL_DATABASE_NOT_OPEN" && cause?.code === "LEVEL_LOCKED") {
      throw new StartupError(`the ${what} directory is in use by another process (is another node running on the same --data-dir?)`);
    }
    throw new StartupError(`cannot open the ${what} store: ${(err as Error).message}`);
  }
}
