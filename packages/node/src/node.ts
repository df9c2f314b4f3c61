// DynamoNode composes the pure parts (ring, vclock, quorum) with the I/O edges (storage,
// hints, peers, the listener). It owns every socket, file and timer of a node.
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { HintStore } from "@dynamo-ts/hintstore";
import type { Ring } from "@dynamo-ts/ring";
import { Storage } from "@dynamo-ts/storage";
import { decodeSiblingSet, encodeSiblingSet, resolveLastWriteWins, sync } from "@dynamo-ts/vclock";
import { AntiEntropy } from "./background/anti-entropy/index.js";
import { type NodeConfig, swimSettings } from "./config.js";
import { ContextSealer } from "./requests/context-seal.js";
import { Coordinator } from "./requests/coordinator.js";
import { ReplicaDirectory } from "./cluster/replica-directory.js";
import type { Deadline } from "./requests/deadline.js";
import { RpcFailureDetector } from "./cluster/failure-detector.js";
import { HintDelivery } from "./background/handoff.js";
import { checkIdentity, clusterFingerprint, IdentityError, loadIdentity, type NodeIdentity, saveIdentity } from "./local/identity.js";
import { DualProtocolListener } from "./rpc/listener.js";
import { type Logger, jsonLogger } from "./observability/log.js";
import { Metrics } from "./observability/metrics.js";
import { type KeyRepairResult, repairKey } from "./requests/key-repair.js";
import { type ExportOptions, ExportWalk } from "./requests/export.js";
import { DEFAULT_PAGE_BYTES, DEFAULT_PAGE_KEYS } from "./rpc/export-import.js";
import { Membership, readRingStatus } from "./cluster/membership.js";
import { OwnershipChanges } from "./cluster/ownership-changes.js";
import type { RangeStreamerDeps } from "./background/range-streamer.js";
import { type MessageLimits, messageLimits } from "./rpc/message-limits.js";
import { hasClusterSecret, PeerPool } from "./rpc/peers.js";
import { ReplicaRebuild } from "./local/rebuild.js";
import { LocalReplica } from "./local/replica.js";
import { type AdminSources } from "./rpc/admin-service.js";
import { createRpcHandler, type RequestHandler } from "./rpc/rpc-handler.js";
import { leanUnaryHandler } from "./rpc/lean-unary.js";
import { leanReplicaStreamHandler } from "./rpc/replica-stream/lean-server.js";
import { coordinateForwarded, kvOperations } from "./rpc/kv-operations.js";
import { createKvHttpHandler } from "./rpc/kv-http.js";
import { httpRoutes } from "./rpc/http-routes.js";
import { inRequestScope, logUnexpectedErrors } from "./rpc/request-scope.js";
import { warnWhileAlone } from "./observability/lone-node.js";
import { Credentials, nodeHeaders } from "./rpc/credentials.js";
import { createDashboardHandler } from "./rpc/dashboard-http.js";
import { registerNodeGauges } from "./observability/node-gauges.js";
import { requestMetrics } from "./observability/request-metrics.js";
import { type Readiness, readiness } from "./observability/readiness.js";
import { MAX_TIMEOUT_MS, registerServices } from "./rpc/services.js";
import { clusterSecretMatcher } from "./rpc/call-context.js";
import { TlsMaterial } from "./rpc/tls-material.js";
import { StoreHealth } from "./local/store-health.js";
import { TombstoneCollector } from "./background/tombstones.js";
import { VERSION } from "./version.js";

export class StartupError extends Error {
  override name = "StartupError";
}

export class DynamoNode {
  readonly metrics: Metrics;
  readonly detector: RpcFailureDetector;
  private readonly startedAt = Date.now();
  readonly membership: Membership;
  /** Resolves once the node has stopped (after SIGTERM, or after leaving the cluster). */
  readonly stopped: Promise<void>;
  private resolveStopped!: () => void;
  private readonly peers: PeerPool;
  /** TLS material (certificate, key, cluster CA), reloaded when the files change; undefined: plaintext. */
  private readonly tls: TlsMaterial | undefined;
  private readonly replica: LocalReplica;
  /** Replica endpoints by node (local store or peer) and their availability. */
  readonly replicas: ReplicaDirectory;
  readonly handoff: HintDelivery;
  readonly tombstones: TombstoneCollector;
  readonly antiEntropy: AntiEntropy;
  private listener: DualProtocolListener | undefined;
  private servingNow = false;
  private readonly servingListeners = new Set<() => void>();
  private stopping: Promise<void> | undefined;
  private readonly aloneTimers: NodeJS.Timeout[] = [];
  private readonly ownership: OwnershipChanges;
  /** Fires when the node starts to stop: long-lived streams (peers' replica streams, health watches) then end. */
  private readonly draining = new AbortController();
  private probeTimer: NodeJS.Timeout | undefined;
  private readonly limits: MessageLimits;

  private readonly rebuild: ReplicaRebuild;
  readonly storeHealth: StoreHealth;

  private constructor(
    readonly config: NodeConfig,
    private readonly storage: Storage,
    private readonly hints: HintStore,
    readonly log: Logger,
    private identity: NodeIdentity,
    metrics: Metrics,
    readonly credentials: Credentials,
  ) {
    this.metrics = metrics;
    this.rebuild = new ReplicaRebuild(identity.rebuilding);
    this.stopped = new Promise((resolve) => (this.resolveStopped = resolve));
    this.limits = messageLimits(config);
    this.detector = new RpcFailureDetector({ retryAfterMs: 1000 }, Date.now);
    // Outgoing sessions close before the peers' listeners would close them idle (a GOAWAY
    // crossing a new call fails that call); peers are assumed to run this node's settings.
    const peerIdleMs = config.idleConnectionTimeoutMs > 0 ? Math.max(1_000, Math.floor((config.idleConnectionTimeoutMs * 3) / 4)) : 45_000;
    this.tls = config.tls ? new TlsMaterial(config.tls, log) : undefined;
    const tlsMaterial = this.tls;
    this.peers = new PeerPool(config.clusterSecret, (node) => this.membership.addressOf(node), {
      idleConnectionTimeoutMs: peerIdleMs,
      ...(tlsMaterial ? { tls: () => tlsMaterial.clientOptions() } : {}),
      leanCalls: config.leanUnary,
      // A peer's answer carries at most one record over the batch budget (it sends under its own limit, assumed to be this node's).
      streamReadMaxBytes: 2 * this.limits.internalReadMaxBytes,
    });
    this.membership = new Membership(
      {
        nodeId: config.nodeId,
        address: config.advertise,
        dataDir: config.dataDir,
        vnodes: config.vnodes,
        initialMembers: config.peers,
        seeds: [...config.seeds, ...config.peers.map((p) => p.address)],
        swim: swimSettings(config.gossipIntervalMs, config.gossipSuspicionMs, config.gossipSyncIntervalMs),
      },
      (address, bytes) => this.peers.sendGossip(address, bytes, Math.max(100, config.gossipIntervalMs)),
      this.metrics,
      log,
    );
    // An operator removed this node while it was down: it must not serve with stale ranges.
    this.membership.onRemoved(() => void this.stop());
    this.storeHealth = new StoreHealth(
      [
        { name: "data", reopen: () => storage.reopen(), probe: () => storage.probe() },
        { name: "hints", reopen: () => hints.reopen() },
      ],
      { retryBaseMs: 1_000, retryMaxMs: 30_000, probeIntervalMs: config.diskProbeIntervalMs },
      log,
      this.metrics,
      () => this.notifyServing(),
    );
    storage.onWriteFailure((err) => this.storeHealth.failed("data", err));
    const hintStoreFailed = (err: unknown) => this.storeHealth.failed("hints", err);
    this.replica = new LocalReplica(config.nodeId, storage, hints, config.resolution, this.metrics, this.rebuild, hintStoreFailed);
    this.replicas = new ReplicaDirectory(
      config.nodeId,
      this.replica,
      (node) => this.peers.endpoint(node),
      this.detector,
      this.membership,
      (peer, op, ok, seconds) => {
        this.metrics.replicaCalls.inc({ peer, op, outcome: ok ? "ok" : "failed" });
        this.metrics.replicaSeconds.observe({ peer, op }, seconds);
      },
    );
    this.handoff = new HintDelivery(
      hints,
      (hint) => this.replicas.observe(hint.target, this.peers.deliverHint(hint.target, hint.key, hint.record, 5_000)),
      {
        intervalMs: config.hintIntervalMs,
        batchSize: 64,
        batchBytes: 4 * 1024 * 1024,
        backoff: { baseMs: 500, maxMs: 30_000 },
        onHintStoreFailure: hintStoreFailed,
      },
      this.metrics,
      log,
    );
    // A node seen again gets its hints at once rather than at the next backoff step.
    this.detector.onUp((node) => this.handoff.trigger(node));
    // Gossip seeing a node alive again is the surest "it is back": trust it over old RPC failures.
    this.membership.onUp((node) => {
      this.detector.recordSuccess(node);
      this.handoff.trigger(node);
    });
    this.tombstones = new TombstoneCollector(
      {
        nodeId: config.nodeId,
        n: config.n,
        graceMs: config.tombstoneGraceMs,
        intervalMs: config.tombstoneSweepIntervalMs,
        maxPerSweep: 10_000,
        cleanupDelayMs: config.cleanupDelayMs,
      },
      storage,
      () => this.ring,
      this.replicas,
      (node, key, record) =>
        node === config.nodeId ? this.replica.purge(key, record) : this.replicas.observe(node, this.peers.purge(node, key, record, 5_000)),
      this.metrics,
      log,
      {
        settledSince: () => (this.rebuild.active || this.membership.ringStatus !== "normal" ? undefined : this.membership.settledInTouchSince),
        remove: (key, scanned) => this.replica.removeStray(key, scanned),
      },
    );
    this.antiEntropy = new AntiEntropy(
      {
        nodeId: config.nodeId,
        n: config.n,
        intervalMs: config.antiEntropyIntervalMs,
        keysPerSecond: config.antiEntropyKeysPerSecond,
        bytesPerSecond: config.antiEntropyBytesPerSecond,
        tombstoneGraceMs: config.tombstoneGraceMs,
        maxMessageBytes: this.limits.internalReadMaxBytes,
      },
      {
        ring: () => this.ring,
        storage,
        replica: this.replica,
        client: (node) => this.peers.antiEntropyClient(node),
        replicas: this.replicas,
        metrics: this.metrics,
        log,
        now: Date.now,
        random: Math.random,
        rebuild: this.rebuild,
        onRebuilt: () => this.saveIdentity({ ...this.identity, rebuilding: false }),
      },
    );
    // Ranges gained or reshaped by a membership change get their trees at once.
    this.membership.onRingChange(() => this.antiEntropy.ringChanged());
    this.ownership = new OwnershipChanges({
      self: config.nodeId,
      n: config.n,
      w: config.w,
      dataDir: config.dataDir,
      bytesPerSecond: config.streamBytesPerSecond,
      // Gossip spreads a status change in a few periods; a write a coordinator began before it knew
      // completes (or fails) within the request timeout. After both, every acknowledged write is
      // on the sources or was sent to the gaining nodes too.
      announceDelayMs: 10 * config.gossipIntervalMs + config.requestTimeoutMs,
      membership: this.membership,
      streaming: this.streamingEndpoints(),
      leaveAndStop: () => this.leave(),
      log,
      metrics: this.metrics,
    });
    // Hints for a member that was removed or left can never be delivered: its ranges were streamed
    // to their new owners (from the survivors, or by itself). Dropped, and counted.
    this.membership.onRingChange(() => void this.dropHintsForRemovedMembers());
  }

  private get ring(): Ring {
    return this.membership.ring;
  }

  static async open(config: NodeConfig, log: Logger = jsonLogger(config.nodeId)): Promise<DynamoNode> {
    try {
      mkdirSync(config.dataDir, { recursive: true });
    } catch (err) {
      throw new StartupError(`cannot create data directory ${config.dataDir}: ${(err as Error).message}`);
    }
    const cluster = clusterFingerprint(config.clusterSecret);
    let identity: NodeIdentity | undefined;
    try {
      identity = loadIdentity(config.dataDir);
      if (identity) checkIdentity(identity, config.nodeId, cluster, config.dataDir);
    } catch (err) {
      if (err instanceof IdentityError) throw new StartupError(err.message);
      throw err;
    }
    if (readRingStatus(join(config.dataDir, "ring-status.json"))?.status === "removed") {
      throw new StartupError(
        `this data dir (${config.dataDir}) belongs to node ${config.nodeId}, which the cluster removed (dynamo remove-node); wipe the data dir to join again as a new node`,
      );
    }
    // LevelDB's CURRENT file exists once a store was created: without it this start has no data.
    const dataDir = join(config.dataDir, "data");
    const startsWithoutData = !existsSync(join(dataDir, "CURRENT"));
    if (startsWithoutData && identity) {
      log.error("this node's data store is gone although its data directory says it held data: rebuilding from co-replicas before answering reads", {
        dataDir: config.dataDir,
      });
    }
    identity = {
      nodeId: config.nodeId,
      cluster,
      createdAt: identity?.createdAt ?? new Date().toISOString(),
      rebuilding: startsWithoutData || (identity?.rebuilding ?? false),
    };
    // Recorded before the store is created: a crash right after must not forget the rebuild.
    try {
      saveIdentity(config.dataDir, identity);
    } catch (err) {
      throw new StartupError(`cannot write ${config.dataDir}/identity.json: ${(err as Error).message}`);
    }
    let credentials: Credentials;
    try {
      credentials = new Credentials({ clusterSecret: config.clusterSecret, tokensFile: config.tokensFile, requireClientAuth: config.requireClientAuth });
    } catch (err) {
      throw new StartupError((err as Error).message);
    }
    const metrics = new Metrics({ process: true });
    const onBatchWritten = (operations: number, seconds: number) => {
      metrics.writeBatchSize.observe(operations);
      if (config.sync) metrics.syncSeconds.observe(seconds);
    };
    const storage = await openOrExplain("data", () => Storage.open(dataDir, { sync: config.sync, onBatchWritten }));
    let hints: HintStore;
    try {
      const limits = messageLimits(config);
      hints = await openOrExplain("hints", () =>
        HintStore.open(join(config.dataDir, "hints"), {
          sync: config.sync,
          ttlMs: config.hintTtlMs,
          maxBytes: config.maxHintBytes,
          maxBytesPerTarget: config.maxHintBytesPerTarget,
          maxRecordBytes: limits.maxShippedRecordBytes,
          // One hint per key and target: a newer hint is merged into the older one causally,
          // exactly as the target will merge it (sync is commutative and idempotent).
          merge: (older, newer) => encodeSiblingSet(sync(decodeSiblingSet(older), decodeSiblingSet(newer))),
        }),
      );
    } catch (err) {
      await storage.close();
      throw err;
    }
    return new DynamoNode(config, storage, hints, log, identity, metrics, credentials);
  }

  private saveIdentity(identity: NodeIdentity): void {
    this.identity = identity;
    try {
      saveIdentity(this.config.dataDir, identity);
    } catch (err) {
      this.log.error("could not write the data directory's identity file", { error: String(err) });
    }
  }

  async start(): Promise<{ port: number; host: string }> {
    const { config } = this;
    const coordinator = new Coordinator({
      options: { ...config, maxShippedRecordBytes: this.limits.maxShippedRecordBytes },
      ring: () => this.ring,
      transition: () => this.membership.transition,
      replicas: this.replicas,
      random: Math.random,
      updateLocal: (key, fn) => this.replica.updateRecord(key, fn),
      localWritable: () => this.storeHealth.dataWritable,
      forwardWrite: (node, args) => this.peers.forwardWrite(node, args),
      now: Date.now,
      metrics: this.metrics,
      sealer: new ContextSealer(config.clusterSecret),
      log: this.log,
    });
    const kv = kvOperations({ coordinator, credentials: this.credentials, clusterSecret: config.clusterSecret, defaultTimeoutMs: config.requestTimeoutMs });
    const forwardedWrites = coordinateForwarded(coordinator, config.requestTimeoutMs);
    const kvHttp = createKvHttpHandler({
      coordinator,
      defaultTimeoutMs: config.requestTimeoutMs,
      maxValueBytes: config.maxValueBytes,
      log: this.log,
      observe: (method, code, seconds) => this.metrics.observeRequest(method, code, seconds),
      authorize: (req, role) => {
        if (this.credentials.requireClientAuth) this.credentials.authorize(nodeHeaders(req.headers), role, `${req.method} /kv`);
      },
    });
    const adminSources = this.adminSources(coordinator);
    const dashboard = createDashboardHandler(adminSources);
    registerNodeGauges(this.metrics, {
      nodeId: config.nodeId,
      members: () => this.membership.swim.members(),
      ring: () => this.ring,
      hintTargets: () => this.hints.targets(),
      antiEntropyRanges: () => this.antiEntropy.status().ranges,
      storage: () => this.storage.stats(),
      serving: () => this.serving,
      connections: () => this.connectionCounters(),
    });
    const handler = createRpcHandler({
      routes: (router) =>
        registerServices(router, {
          nodeId: config.nodeId,
          clusterSecret: config.clusterSecret,
          credentials: this.credentials,
          defaultTimeoutMs: config.requestTimeoutMs,
          kv,
          forwardedWrites,
          replica: this.replica,
          antiEntropy: this.antiEntropy,
          serving: () => this.serving,
          ready: () => this.readiness().ready,
          draining: this.draining.signal,
          onServingChange: (listener) => {
            this.servingListeners.add(listener);
            return () => this.servingListeners.delete(listener);
          },
          gossip: (bytes) => this.membership.receive(bytes),
          admin: adminSources,
          limits: this.limits,
        }),
      interceptors: [requestMetrics(this.metrics), logUnexpectedErrors(this.log)],
      maxTimeoutMs: MAX_TIMEOUT_MS,
      maxCheckedJsonBytes: this.limits.publicReadMaxBytes,
      log: this.log,
      fallback: httpRoutes({
        kvHttp,
        dashboard,
        metrics: this.metrics,
        log: this.log,
        readiness: () => this.readiness(),
        serving: () => this.serving,
        notReadyReason: () => this.notReadyReason(),
      }),
    });
    const lean = config.leanUnary
      ? leanUnaryHandler({
          kv,
          readMaxBytes: this.limits.publicReadMaxBytes,
          maxTimeoutMs: MAX_TIMEOUT_MS,
          observe: (method, code, seconds) => this.metrics.observeRequest(method, code, seconds),
          log: this.log,
        })
      : undefined;
    // Other nodes' replica streams, without connect-node's per-message machinery (lean-server.ts).
    const leanStream = config.leanUnary
      ? leanReplicaStreamHandler({
          replica: this.replica,
          coordinate: forwardedWrites,
          isClusterSecret: clusterSecretMatcher(config.clusterSecret),
          readMaxBytes: this.limits.internalReadMaxBytes,
          draining: this.draining.signal,
        })
      : undefined;
    const serve: RequestHandler = lean && leanStream ? (req, res) => lean(req, res) || leanStream(req, res) || handler(req, res) : handler;
    const tlsMaterial = this.tls;
    if (!tlsMaterial) {
      this.log.warn(
        "plaintext: TLS is off, so anyone on the network can read keys, values, tokens and the cluster secret, and forge node-to-node calls; turn it on with --tls-cert-file, --tls-key-file and --tls-ca-file (docs/security.md)",
      );
    }
    this.listener = new DualProtocolListener(inRequestScope(serve, { ...config, requirePeerCertificate: tlsMaterial !== undefined }, this.log), {
      ...(tlsMaterial ? { tls: () => tlsMaterial.serverOptions() } : {}),
      firstRequestTimeoutMs: config.firstRequestTimeoutMs,
      idleConnectionTimeoutMs: config.idleConnectionTimeoutMs,
      streamIdleTimeoutMs: config.streamIdleTimeoutMs,
      maxConnections: config.maxConnections,
      // Other nodes' replica streams and anti-entropy may be silent for long stretches.
      isTrusted: hasClusterSecret(config.clusterSecret),
    });
    const listener = this.listener;
    tlsMaterial?.watch(() => listener.reloadTls());
    const [host, portText] = splitHostPort(config.listen);
    let address;
    try {
      address = await this.listener.listen(Number(portText), host);
    } catch (err) {
      throw new StartupError(`cannot listen on ${config.listen}: ${(err as Error).message}`);
    }
    this.membership.start();
    await this.waitForJoin();
    this.ownership.start();
    this.setServing(true);
    if (config.hintedHandoff) this.handoff.start();
    // Peers whose RPCs failed are health-checked so that they are seen again (as fallbacks,
    // and to trigger hint delivery) without waiting for client traffic or gossip.
    this.probeTimer = setInterval(() => {
      for (const node of this.ring.nodes) {
        if (node === config.nodeId || this.detector.health(node) === "up") continue;
        this.replicas.observe(node, this.peers.probe(node, 1_000)).catch(() => {});
      }
    }, 500);
    this.probeTimer.unref();
    this.tombstones.start();
    this.storeHealth.start();
    this.antiEntropy.start();
    this.aloneTimers.push(...warnWhileAlone(config, () => this.readiness(), this.log));
    this.log.info("listening", {
      listen: `${address.address}:${address.port}`,
      advertise: config.advertise,
      seeds: [...config.seeds, ...config.peers.filter((p) => p.id !== config.nodeId).map((p) => p.address)],
      incarnation: this.membership.swim.self.incarnation,
      n: config.n,
      r: config.r,
      w: config.w,
      version: VERSION,
    });
    return { host: address.address, port: address.port };
  }

  /**
   * A node that knows no other member yet but has seeds waits (bounded) to hear from one
   * before serving: coordinating on a ring of one would place every key on this node alone.
   */
  private async waitForJoin(timeoutMs = 10_000): Promise<void> {
    const hasSeeds = this.config.seeds.some((a) => a !== this.config.advertise);
    if (!hasSeeds || this.knownMembers() > 1) return;
    const deadline = Date.now() + timeoutMs;
    while (this.knownMembers() <= 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (this.knownMembers() <= 1) this.log.warn("no seed answered; serving as a cluster of one until one does", { seeds: this.config.seeds });
  }

  /** Members of either ring (a joining node is in the pending ring only). */
  private knownMembers(): number {
    return new Set([...this.ring.nodes, ...this.membership.pendingRing.nodes]).size;
  }

  /** How range streaming reads a store (this node's directly, others' over ReplicaService.Scan) and merges into one. */
  private streamingEndpoints(): Pick<RangeStreamerDeps, "isAvailable" | "scan" | "apply"> {
    const { config } = this;
    const limits = { maxKeys: DEFAULT_PAGE_KEYS, maxBytes: DEFAULT_PAGE_BYTES };
    const pageTimeoutMs = Math.max(config.requestTimeoutMs, 10_000);
    return {
      isAvailable: (node) => this.replicas.isAvailable(node),
      scan: (node, after, lastToken, signal) =>
        node === config.nodeId
          ? this.replica.scan(after, lastToken, limits)
          : this.replicas.observe(node, this.peers.scan(node, after, lastToken, limits, signal, pageTimeoutMs)),
      // A page's keys are distinct and each store's read-modify-writes are atomic: merge them together.
      apply: async (target, entries, signal) => {
        if (target === config.nodeId) await Promise.all(entries.map((entry) => this.replica.apply(entry.key, entry.record.set)));
        else await Promise.all(entries.map((entry) => this.replicas.endpoint(target).write(entry.key, entry.record, undefined, signal)));
      },
    };
  }

  private async dropHintsForRemovedMembers(): Promise<void> {
    const removed = new Set(
      this.membership
        .members()
        .filter((m) => m.ringStatus === "removed")
        .map((m) => m.id),
    );
    for (const target of this.hints.targets()) {
      if (!removed.has(target.target)) continue;
      try {
        const dropped = await this.hints.dropTarget(target.target);
        this.metrics.count("hints_dropped_removed", dropped);
        this.log.warn("dropped the hints held for a member that was removed or left", { member: target.target, hints: dropped });
      } catch (err) {
        this.log.warn("could not drop the hints held for a member that was removed or left", { member: target.target, error: String(err) });
      }
    }
  }

  private setServing(serving: boolean): void {
    this.servingNow = serving;
    this.notifyServing();
  }

  /** Serving: started, not stopping, and both stores take writes. */
  get serving(): boolean {
    return this.servingNow && this.storeHealth.ready;
  }

  /** Whether this node can do useful work for clients now (see observability/readiness.ts). */
  readiness(): Readiness {
    const ring = this.ring.nodes;
    const up = new Set(
      this.membership.swim
        .members()
        .filter((m) => m.state === "alive" || m.state === "suspect")
        .map((m) => m.id),
    );
    up.add(this.config.nodeId);
    return readiness({
      started: this.servingNow,
      stopping: this.stopping !== undefined,
      storageProblem: this.storeHealth.reason ?? "",
      ringStatus: this.membership.ringStatus,
      ringMembers: ring.length,
      membersUp: ring.filter((id) => up.has(id)).length,
      n: this.config.n,
      r: this.config.r,
      w: this.config.w,
    });
  }

  private notReadyReason(): string {
    if (!this.servingNow) return this.stopping ? "shutting down" : "starting";
    return this.storeHealth.reason ?? "";
  }

  private notifyServing(): void {
    for (const listener of [...this.servingListeners]) listener();
  }

  /** The listener's and the peer links' counters, named as the node's own counters are. */
  private connectionCounters(): Record<string, number> {
    const counters: Record<string, number> = { peer_bulk_sessions_recycled: this.peers.stats().bulkSessionsRecycled };
    const stats = this.listener?.stats();
    if (stats) {
      for (const [name, value] of Object.entries(stats)) counters[`listener_${name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}`] = value;
    }
    return counters;
  }

  /** What AdminService reports, and its actions. */
  private adminSources(coordinator: Coordinator): AdminSources {
    const { config } = this;
    return {
      ...config,
      version: VERSION,
      credentials: this.credentials,
      startedAt: this.startedAt,
      defaultTimeoutMs: config.requestTimeoutMs,
      now: Date.now,
      ring: () => this.ring,
      pendingRing: () => this.membership.pendingRing,
      membership: this.membership,
      counters: () => ({ ...this.metrics.snapshot(), ...this.connectionCounters(), process_cpu_microseconds: processCpuMicroseconds() }),
      rebuilding: () => this.rebuild.active,
      antiEntropy: this.antiEntropy,
      hints: this.hints,
      hintSchedule: this.handoff.schedule,
      hintsRejected: () => this.metrics.get("hints_rejected"),
      notReadyReason: () => (this.serving ? "" : this.notReadyReason()),
      validateKey: (key) => coordinator.validateKey(key),
      repairKey: (key, deadline) => this.repairKey(key, deadline),
      leave: () => this.leave(),
      ownership: this.ownership,
      draining: this.draining.signal,
      exportWalk: (options) => this.exportWalk(options),
      contextOf: (key, set) => coordinator.contextOf(key, set),
      importRecord: (key, set, deadline) => coordinator.importRecord(key, set, deadline),
    };
  }

  /**
   * AdminService.Export: every member's store read page by page (this node's own directly, the
   * others' over ReplicaService.Scan, each page within the request timeout) and merged per key.
   */
  private exportWalk(options: ExportOptions): ExportWalk {
    const { config } = this;
    const limits = { maxKeys: DEFAULT_PAGE_KEYS, maxBytes: DEFAULT_PAGE_BYTES };
    const pageTimeoutMs = Math.max(config.requestTimeoutMs, 10_000);
    return new ExportWalk(
      {
        ring: () => this.ring,
        n: config.n,
        r: config.r,
        resolve: (set) => (config.resolution === "lww" ? resolveLastWriteWins(set) : set),
        scan: (node, after, lastToken, signal) =>
          node === config.nodeId
            ? this.replica.scan(after, lastToken, limits)
            : this.replicas.observe(node, this.peers.scan(node, after, lastToken, limits, signal, pageTimeoutMs)),
      },
      options,
    );
  }

  /** AdminService.RepairKey: rebuilds a key whose clock was damaged, on every replica (key-repair.ts). */
  async repairKey(key: string, deadline: Deadline): Promise<KeyRepairResult> {
    const self = this.config.nodeId;
    const result = await repairKey(
      {
        nodeId: self,
        preferenceList: (k) => this.ring.preferenceList(k, this.config.n),
        read: (node, k, signal) => this.replicas.endpoint(node).read(k, signal),
        reset: async (node, k, expected, record, signal) => {
          if (node === self) return this.replica.reset(k, expected, decodeSiblingSet(record));
          const res = await this.replicas.observe(node, this.peers.replicaClient(node).reset({ key: k, expected, record }, { signal }));
          return res.replaced;
        },
      },
      key,
      deadline.signal,
    );
    this.log.info("repaired a key's version clock", {
      key,
      replicas: result.replicas,
      siblings: result.siblings,
      clockEntriesBefore: result.clockEntriesBefore,
      attempts: result.attempts,
    });
    return result;
  }

  /** Announces a final departure (the node leaves every ring), then stops. */
  async leave(): Promise<void> {
    this.log.info("leaving the cluster");
    await this.membership.leave();
    void this.stop();
  }

  /** Graceful stop: refuse new work, finish in-flight requests (bounded), close stores. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.config.leaveOnSigterm && this.membership.swim.self.state !== "left") await this.membership.leave();
      this.setServing(false);
      this.log.info("stopping", { graceMs: this.config.shutdownGraceMs });
      clearInterval(this.probeTimer);
      for (const t of this.aloneTimers) clearTimeout(t);
      this.storeHealth.stop();
      this.draining.abort();
      const closed = await this.listener?.close(this.config.shutdownGraceMs);
      if (closed && closed.cutOff > 0) {
        this.log.warn("grace period over: cut off requests still in flight", { requests: closed.cutOff, graceMs: this.config.shutdownGraceMs });
      }
      this.ownership.stop();
      this.tls?.stop();
      await this.handoff.stop();
      await this.tombstones.stop();
      await this.antiEntropy.stop();
      this.membership.stop();
      this.peers.close();
      await this.storage.close();
      await this.hints.close();
      this.log.info("stopped");
      this.resolveStopped();
    })();
    return this.stopping;
  }
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

/** User + system CPU time of this process since it started, in µs (dynamo-bench divides it by the operations served). */
function processCpuMicroseconds(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}
