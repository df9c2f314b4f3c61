// Anti-entropy: replicas that diverged (a missed write, a lost hint, a disk restored from an
// older copy) converge without any client reading the key.
//
// Each node keeps one Merkle tree per "replica range": a maximal run of ring segments whose N
// replicas are the same nodes, this one included. Every replica of such a range computes the
// same boundaries from the same ring, so two co-replicas hold trees over exactly the same keys
// and can compare them. Leaves hold (key, digest of the encoded sibling set); the trees are
// built from storage at start and kept current by LocalReplica's change listener.
//
// Periodically (and on an admin Repair) the node opens one Exchange stream per co-replica and,
// range by range, compares roots, descends only into differing branches, diffs the differing
// leaves' entries, fetches the keys the peer holds differently and pushes the ones it holds
// differently. Both sides merge with the same causal merge (vclock sync) as every other
// replica write, so the order of merges never matters. A token bucket on keys and bytes moved
// (shared by both directions, and by this node's initiator and responder sides) keeps the
// background work from starving client traffic.
//
// Tombstones travel like any other version. Their purge is safe against anti-entropy by this
// rule (see README, "Anti-entropy"): a key whose every version is older than half the tombstone
// grace period, that one replica holds and the other lacks entirely, is copied only if a third
// replica of the range also holds some version of it. Otherwise the absence may be a purged
// delete and the holder a stale replica, so the key is withheld and reported.
//
// This file is the scheduler: rounds, timers, repairs, status and the rebuild's rounds. It wires
// the parts together (README.md lists them): the trees (trees.ts), the throttle (throttle.ts), and
// the two sides of an exchange (initiator.ts, responder.ts), which share nothing but the trees
// and the throttle, handed to them here.
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ExchangeRequest, ExchangeResponseSchema } from "@dynamo-ts/proto";
import { replicaRanges, type TokenRange } from "@dynamo-ts/ring";
import { Initiator, type RangeExchangeResult } from "./initiator.js";
import type { AntiEntropyDeps, AntiEntropyOptions } from "./options.js";
import { rangesOverlap } from "./ranges.js";
import { Responder } from "./responder.js";
import { Throttle } from "./throttle.js";
import { type RangeEntry, Trees } from "./trees.js";

/** How often rounds run while the node rebuilds its data, whatever the interval. */
const REBUILD_ROUND_MS = 1_000;

export class AntiEntropy {
  private readonly trees: Trees;
  private readonly initiator: Initiator;
  private readonly responder: Responder;
  /** Rounds and repairs run one at a time, in call order. */
  private queue: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private readonly stopping = new AbortController();

  constructor(
    private readonly options: AntiEntropyOptions,
    private readonly deps: AntiEntropyDeps,
  ) {
    const throttle = new Throttle(options, deps.now, deps.metrics, this.stopping.signal);
    // From now on every change to the local store reaches the trees, including the ones made
    // before start() finishes building them.
    this.trees = new Trees(options, deps, this.stopping.signal);
    deps.replica.onChange((change) => this.trees.onChange(change));
    this.initiator = new Initiator(options, deps, throttle, this.stopping.signal);
    this.responder = new Responder(options, deps, this.trees, throttle, this.stopping.signal);
  }

  /** Builds the trees from storage (in the background) and starts the periodic rounds. */
  start(): void {
    void this.trees.ensure().catch((err: unknown) => this.deps.log.error("anti-entropy: building the trees failed", { error: String(err) }));
    if (this.rebuilding) this.schedule(0);
    else if (this.options.intervalMs > 0) this.schedule(Math.min(this.options.intervalMs, 5_000));
  }

  private get rebuilding(): boolean {
    return this.deps.rebuild?.active ?? false;
  }

  /** Ranges this node replicates and still has to rebuild (0 when it is not rebuilding). */
  rangesToRebuild(): number {
    const rebuild = this.deps.rebuild;
    if (!rebuild?.active) return 0;
    return rebuild.remaining(this.rebuildEntries());
  }

  private rebuildEntries(): Array<{ range: TokenRange; peers: string[] }> {
    const ranges = replicaRanges(this.deps.ring(), this.options.nodeId, this.options.n);
    return ranges.map(({ range, replicas }) => ({ range, peers: replicas.filter((node) => node !== this.options.nodeId) }));
  }

  /** Ends the rebuild when every range is done; notifies the node once. */
  private checkRebuilt(): void {
    const rebuild = this.deps.rebuild;
    if (rebuild?.finishIfComplete(this.rebuildEntries())) {
      this.deps.log.info("rebuild complete: this node answers reads as a replica again");
      this.deps.onRebuilt?.();
    }
  }

  /** Stops the rounds, abandons exchanges in flight and waits for them to end. */
  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.stopping.abort();
    await this.queue.catch(() => undefined);
    await this.trees.settled();
  }

  /**
   * Tells anti-entropy that the ring changed: the trees of ranges gained or reshaped are built
   * now. (Rounds also notice a new ring object by themselves; this only makes it sooner.)
   */
  ringChanged(): void {
    this.trees.refresh();
  }

  /** Resolves once the trees of the current ring are built (peers' opens are refused until then). */
  async whenReady(): Promise<void> {
    await this.trees.ensure();
  }

  /** An exchange now with every co-replica of the ranges overlapping `range` (all when undefined). */
  async repair(range?: TokenRange): Promise<{ exchanges: RangeExchangeResult[]; durationMs: number }> {
    const started = this.deps.now();
    const exchanges = await this.enqueue(() => this.round(range, false));
    return { exchanges, durationMs: this.deps.now() - started };
  }

  /** Answers a peer's Exchange stream, request by request. */
  respond(requests: AsyncIterable<ExchangeRequest>, signal: AbortSignal): AsyncGenerator<MessageInitShape<typeof ExchangeResponseSchema>> {
    return this.responder.respond(requests, signal);
  }

  // --- rounds -----------------------------------------------------------------------------

  private schedule(delayMs: number): void {
    if (this.stopping.signal.aborted) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      void this.enqueue(() => this.round(undefined, true))
        .then((results) => this.logRound(results))
        .catch((err: unknown) => {
          if (!this.stopping.signal.aborted) this.deps.log.error("anti-entropy round failed", { error: String(err) });
        })
        .finally(() => {
          this.checkRebuilt();
          // Jitter keeps the nodes' rounds from falling into step.
          const interval = this.rebuilding ? REBUILD_ROUND_MS : this.options.intervalMs;
          if (interval > 0) this.schedule(interval * (0.9 + 0.2 * this.deps.random()));
        });
    }, delayMs);
    this.timer.unref();
  }

  private enqueue<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async round(only: TokenRange | undefined, periodic: boolean): Promise<RangeExchangeResult[]> {
    const set = await this.trees.ensure();
    const byPeer = new Map<string, RangeEntry[]>();
    for (const entry of set.entries) {
      if (only !== undefined && !rangesOverlap(entry.range, only)) continue;
      for (const peer of entry.replicas) {
        if (peer === this.options.nodeId) continue;
        if (periodic && (!this.deps.replicas.isAvailable(peer) || (!this.rebuilding && this.peerExchangedRecently(peer, entry.range)))) continue;
        const shared = byPeer.get(peer);
        if (shared === undefined) byPeer.set(peer, [entry]);
        else shared.push(entry);
      }
    }
    if (periodic) this.deps.metrics.count("anti_entropy_rounds");
    const results: RangeExchangeResult[] = [];
    for (const [peer, entries] of [...byPeer].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (this.stopping.signal.aborted) break;
      results.push(...(await this.initiator.exchangeWithPeer(peer, entries)));
    }
    return results;
  }

  /** Whether `peer` opened `range` with this node within the last interval (an exchange moves keys both ways). */
  private peerExchangedRecently(peer: string, range: TokenRange): boolean {
    const at = this.trees.lastOpened(peer, range);
    return at !== undefined && this.deps.now() - at < this.options.intervalMs;
  }

  private logRound(results: RangeExchangeResult[]): void {
    const moved = results.reduce((sum, r) => sum + r.keysFetched + r.keysPushed, 0);
    const failed = results.filter((r) => r.outcome === "failed" || r.outcome === "refused");
    if (moved === 0 && failed.length === 0) return;
    this.deps.log.info("anti-entropy round", {
      exchanges: results.length,
      keysMoved: moved,
      keysRepaired: results.reduce((sum, r) => sum + r.keysRepaired, 0),
      bytesMoved: results.reduce((sum, r) => sum + r.bytesMoved, 0),
      failed: failed.map((r) => `${r.peer} (${r.range.start}, ${r.range.end}]: ${r.outcome}: ${r.detail}`).slice(0, 5),
    });
  }

  // --- status -----------------------------------------------------------------------------

  status(): AntiEntropyStatus {
    const now = this.deps.now();
    return {
      intervalMs: this.options.intervalMs,
      keysPerSecond: this.options.keysPerSecond,
      bytesPerSecond: this.options.bytesPerSecond,
      ready: this.trees.ready,
      ranges: this.trees.entries.map(({ range, replicas, tree, stats }) => ({
        range,
        peers: replicas.filter((node) => node !== this.options.nodeId),
        keys: tree.size,
        treeDepth: tree.depth,
        lastExchangeAgeMs: stats.lastAt === undefined ? 0 : Math.max(0, now - stats.lastAt),
        lastPeer: stats.lastPeer,
        lastOutcome: stats.lastOutcome,
        exchanges: stats.exchanges,
        keysRepaired: stats.keysRepaired,
        keysMoved: stats.keysMoved,
        bytesMoved: stats.bytesMoved,
      })),
    };
  }
}

export interface AntiEntropyStatus {
  readonly intervalMs: number;
  readonly keysPerSecond: number;
  readonly bytesPerSecond: number;
  readonly ready: boolean;
  readonly ranges: ReadonlyArray<{
    readonly range: TokenRange;
    readonly peers: readonly string[];
    readonly keys: number;
    readonly treeDepth: number;
    readonly lastExchangeAgeMs: number;
    readonly lastPeer: string;
    readonly lastOutcome: string;
    readonly exchanges: number;
    readonly keysRepaired: number;
    readonly keysMoved: number;
    readonly bytesMoved: number;
  }>;
}
