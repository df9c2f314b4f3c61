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
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  HASH_FORMAT_VERSION,
  MerkleError,
  MerkleTree,
  type RemoteNodeHash,
  diffEntries,
  differingChildren,
  differingNodes,
} from "@dynamo-ts/merkle";
import type { ExchangeRequest, ExchangeResponseSchema, KeyRecord, OpenRange } from "@dynamo-ts/proto";
import { hashKey, replicaRanges, type Ring, type TokenRange } from "@dynamo-ts/ring";
import { decodeSiblingSet, encodeSiblingSet, InvalidEncodingError, type SiblingSet } from "@dynamo-ts/vclock";
import type { Metrics } from "../../observability/metrics.js";
import type { ReplicaChange } from "../../local/replica.js";
import {
  MAX_CHUNK_BYTES,
  MAX_ENTRIES_PER_CHUNK,
  MAX_INDICES_PER_QUERY,
  MAX_KEYS_PER_BATCH,
  MAX_LEAVES_PER_QUERY,
  MAX_WITHHELD_REMEMBERED,
  MESSAGE_FRAMING_BYTES,
  STEP_TIMEOUT_MS,
  WITHHELD_RECHECK_MS,
} from "./limits.js";
import { chunks, missingKeyDecision, rangesOverlap, treeDepthFor, versionDigest } from "./ranges.js";
import { ExchangeProtocolError, LockstepStream } from "./lockstep.js";
import type { AntiEntropyDeps, AntiEntropyOptions } from "./options.js";
import { Throttle } from "./throttle.js";

// ---------------------------------------------------------------------------------------------
// The node's anti-entropy

/** How often rounds run while the node rebuilds its data, whatever the interval. */
const REBUILD_ROUND_MS = 1_000;

export type ExchangeOutcome = "in-sync" | "repaired" | "refused" | "failed";

/** One range compared with one co-replica. */
export interface RangeExchangeResult {
  readonly range: TokenRange;
  readonly peer: string;
  readonly outcome: ExchangeOutcome;
  readonly detail: string;
  readonly hashesCompared: number;
  readonly keysFetched: number;
  readonly keysPushed: number;
  readonly keysRepaired: number;
  readonly bytesMoved: number;
  readonly keysWithheld: number;
}

interface RangeStats {
  exchanges: number;
  keysRepaired: number;
  keysMoved: number;
  bytesMoved: number;
  lastAt: number | undefined;
  lastPeer: string;
  lastOutcome: string;
}

interface RangeEntry {
  readonly range: TokenRange;
  readonly replicas: readonly string[];
  readonly tree: MerkleTree;
  readonly stats: RangeStats;
}

/** The trees for one ring, indexed by end token. */
class RangeSet {
  private readonly byBounds: Map<string, RangeEntry>;

  constructor(
    readonly ring: Ring,
    /** Sorted by range end. */
    readonly entries: readonly RangeEntry[],
  ) {
    this.byBounds = new Map(entries.map((entry) => [boundsKey(entry.range), entry]));
  }

  exact(range: TokenRange): RangeEntry | undefined {
    return this.byBounds.get(boundsKey(range));
  }

  /** The range holding `token`, if this node replicates it. */
  find(token: number): RangeEntry | undefined {
    const { entries } = this;
    if (entries.length === 0) return undefined;
    // The range holding a token is the first one ending at or after it (wrapping to the first).
    let low = 0;
    let high = entries.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (entries[mid]!.range.end < token) low = mid + 1;
      else high = mid;
    }
    const entry = entries[low] ?? entries[0]!;
    return entry.tree.covers(token) ? entry : undefined;
  }
}

function boundsKey(range: TokenRange): string {
  return `${range.start}:${range.end}`;
}

/** A set of trees being built: changes seen meanwhile go to its trees and are not overwritten by the scan. */
interface PendingBuild {
  readonly set: RangeSet;
  /** Entries whose trees are new and must be filled from storage. */
  readonly toScan: readonly RangeEntry[];
  readonly touched: Set<string>;
}

type ResponseInit = MessageInitShape<typeof ExchangeResponseSchema>;

export class AntiEntropy {
  private current: RangeSet | undefined;
  private pending: PendingBuild | undefined;
  private building: Promise<RangeSet> | undefined;
  private readonly throttler: Throttle;
  /** Rounds and repairs run one at a time, in call order. */
  private queue: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private readonly stopping = new AbortController();
  private readonly withheld = new Map<string, { digest: string; at: number }>();
  /** When each peer last opened each range with this node ("peer\nstart:end"): one exchange per pair and interval is enough. */
  private readonly openedByPeer = new Map<string, number>();

  constructor(
    private readonly options: AntiEntropyOptions,
    private readonly deps: AntiEntropyDeps,
  ) {
    this.throttler = new Throttle(options, deps.now, deps.metrics, this.stopping.signal);
    // From now on every change to the local store reaches the trees, including the ones made
    // before start() finishes building them.
    this.pending = this.prepare(deps.ring());
    deps.replica.onChange((change) => this.onChange(change));
  }

  /** Builds the trees from storage (in the background) and starts the periodic rounds. */
  start(): void {
    void this.ensureTrees().catch((err: unknown) => this.deps.log.error("anti-entropy: building the trees failed", { error: String(err) }));
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
    await this.building?.catch(() => undefined);
  }

  /**
   * Tells anti-entropy that the ring changed: the trees of ranges gained or reshaped are built
   * now. (Rounds also notice a new ring object by themselves; this only makes it sooner.)
   */
  ringChanged(): void {
    void this.ensureTrees().catch((err: unknown) => this.deps.log.error("anti-entropy: rebuilding the trees failed", { error: String(err) }));
  }

  /** Resolves once the trees of the current ring are built (peers' opens are refused until then). */
  async whenReady(): Promise<void> {
    await this.ensureTrees();
  }

  /** An exchange now with every co-replica of the ranges overlapping `range` (all when undefined). */
  async repair(range?: TokenRange): Promise<{ exchanges: RangeExchangeResult[]; durationMs: number }> {
    const started = this.deps.now();
    const exchanges = await this.enqueue(() => this.round(range, false));
    return { exchanges, durationMs: this.deps.now() - started };
  }

  // --- trees ------------------------------------------------------------------------------

  private onChange(change: ReplicaChange): void {
    try {
      const digest = change.after === undefined ? undefined : versionDigest(change.after);
      this.current?.find(change.token)?.tree.set(change.key, change.token, digest);
      const pending = this.pending;
      if (pending !== undefined) {
        pending.touched.add(change.key);
        pending.set.find(change.token)?.tree.set(change.key, change.token, digest);
      }
    } catch (err) {
      // The write itself succeeded; a tree that missed it only costs an extra exchange.
      this.deps.log.error("anti-entropy: a change could not be added to its tree", { key: change.key, error: String(err) });
    }
  }

  /** The trees for `ring`: reused where the range and depth are unchanged, empty (to be scanned) elsewhere. */
  private prepare(ring: Ring): PendingBuild {
    const toScan: RangeEntry[] = [];
    const entries = replicaRanges(ring, this.options.nodeId, this.options.n).map(({ range, replicas }) => {
      const depth = treeDepthFor(range);
      const previous = this.current?.exact(range);
      if (previous !== undefined && previous.tree.depth === depth) return { ...previous, replicas };
      const entry: RangeEntry = {
        range,
        replicas,
        tree: new MerkleTree(range, { depth }),
        stats: { exchanges: 0, keysRepaired: 0, keysMoved: 0, bytesMoved: 0, lastAt: undefined, lastPeer: "", lastOutcome: "" },
      };
      toScan.push(entry);
      return entry;
    });
    return { set: new RangeSet(ring, entries), toScan, touched: new Set() };
  }

  /** The trees of the current ring, built first if the ring changed. */
  private ensureTrees(): Promise<RangeSet> {
    if (this.building === undefined) {
      const run = this.buildTrees();
      this.building = run;
      const done = () => {
        if (this.building === run) this.building = undefined;
      };
      run.then(done, done);
    }
    return this.building;
  }

  private async buildTrees(): Promise<RangeSet> {
    for (;;) {
      const ring = this.deps.ring();
      if (this.current?.ring === ring && this.pending === undefined) return this.current;
      if (this.pending?.set.ring !== ring) this.pending = this.prepare(ring);
      const pending = this.pending;
      const started = this.deps.now();
      let keys = 0;
      for (const entry of pending.toScan) {
        for await (const { key, token, set } of this.deps.storage.scan(entry.range)) {
          if (this.stopping.signal.aborted) throw new Error("anti-entropy stopped");
          // A key changed since the build began already has its newest digest.
          if (!pending.touched.has(key)) entry.tree.set(key, token, versionDigest(set));
          keys++;
        }
      }
      if (this.pending !== pending) continue; // the ring changed again meanwhile
      this.current = pending.set;
      this.pending = undefined;
      this.openedByPeer.clear();
      this.deps.metrics.count("anti_entropy_tree_builds");
      this.deps.log.info("anti-entropy trees ready", {
        ranges: pending.set.entries.length,
        rebuilt: pending.toScan.length,
        keysScanned: keys,
        ms: this.deps.now() - started,
      });
    }
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
    const set = await this.ensureTrees();
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
      results.push(...(await this.exchangeWithPeer(peer, entries)));
    }
    return results;
  }

  /** Whether `peer` opened `range` with this node within the last interval (an exchange moves keys both ways). */
  private peerExchangedRecently(peer: string, range: TokenRange): boolean {
    const at = this.openedByPeer.get(`${peer}\n${boundsKey(range)}`);
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

  // --- initiator --------------------------------------------------------------------------

  private async exchangeWithPeer(peer: string, entries: readonly RangeEntry[]): Promise<RangeExchangeResult[]> {
    const results: RangeExchangeResult[] = [];
    let stream: LockstepStream | undefined;
    try {
      stream = new LockstepStream(this.deps.client(peer), this.stopping.signal, STEP_TIMEOUT_MS);
      for (const entry of entries) {
        const result = await this.exchangeRange(stream, peer, entry);
        this.record(entry, result);
        results.push(result);
        if (result.outcome === "failed") break; // the stream is unusable after an error
      }
    } catch (err) {
      // exchangeRange reports its own errors; this is the stream failing to open.
      const detail = describe(err);
      const result = failedResult(entries[0]!, peer, detail, emptyCounters());
      this.record(entries[0]!, result);
      results.push(result);
    } finally {
      await stream?.close();
    }
    // Ranges not reached because the stream broke are failures too.
    const last = results.at(-1);
    for (const entry of entries.slice(results.length)) {
      const result = failedResult(entry, peer, `not compared: ${last?.detail ?? "exchange ended"}`, emptyCounters());
      this.record(entry, result);
      results.push(result);
    }
    return results;
  }

  private record(entry: RangeEntry, result: RangeExchangeResult): void {
    const { metrics } = this.deps;
    // The exchange's counts went to the metrics and the range's totals as they happened.
    metrics.count("anti_entropy_exchanges");
    metrics.count(`anti_entropy_exchanges_${result.outcome.replace("-", "_")}`);
    const { stats } = entry;
    stats.exchanges++;
    stats.lastAt = this.deps.now();
    stats.lastPeer = result.peer;
    stats.lastOutcome = result.detail ? `${result.outcome}: ${result.detail}` : result.outcome;
  }

  private async exchangeRange(stream: LockstepStream, peer: string, entry: RangeEntry): Promise<RangeExchangeResult> {
    const counters = new ExchangeCounters(this.deps.metrics, entry.stats);
    const { tree, range } = entry;
    try {
      const opened = await stream.ask(
        { step: { case: "open", value: { range, depth: tree.depth, hashFormatVersion: HASH_FORMAT_VERSION, nodeId: this.options.nodeId } } },
        "opened",
      );
      if (!opened.accepted) {
        this.deps.log.warn("anti-entropy exchange refused", { peer, range: `(${range.start}, ${range.end}]`, reason: opened.reason });
        return { range, peer, outcome: "refused", detail: opened.reason, ...counters.values };
      }
      const rebuilt = (outcome: "in-sync" | "repaired") => {
        const peers = entry.replicas.filter((node) => node !== this.options.nodeId);
        this.deps.rebuild?.recordExchange(range, peers, peer, outcome, opened.rebuilding);
        return outcome;
      };
      counters.add("hashesCompared", 1);
      if (Buffer.from(opened.root).equals(tree.root())) return { range, peer, outcome: rebuilt("in-sync"), detail: "", ...counters.values };

      const leaves = await this.differingLeaves(stream, tree, counters);
      if (leaves.length > 0) {
        const diff = await this.diffLeaves(stream, tree, leaves);
        await this.fetchFrom(stream, peer, entry, diff, counters);
        await this.pushTo(stream, peer, entry, diff, counters, opened.rebuilding);
      }
      const moved = counters.values.keysFetched + counters.values.keysPushed > 0;
      return { range, peer, outcome: rebuilt(moved ? "repaired" : "in-sync"), detail: "", ...counters.values };
    } catch (err) {
      return failedResult(entry, peer, describe(err), counters.values);
    }
  }

  /** The descent: one round trip per level, asking only for the children of differing nodes. */
  private async differingLeaves(stream: LockstepStream, tree: MerkleTree, counters: ExchangeCounters): Promise<number[]> {
    let frontier = [0, 1];
    for (let level = 1; level <= tree.depth; level++) {
      const remote: RemoteNodeHash[] = [];
      for (const indices of chunks(frontier, MAX_INDICES_PER_QUERY)) {
        const answer = await stream.ask({ step: { case: "nodeHashes", value: { level, indices } } }, "nodeHashes");
        if (answer.level !== level || answer.hashes.length !== indices.length || answer.hashes.some((h, i) => h.index !== indices[i])) {
          throw new ExchangeProtocolError(`the peer answered other nodes than asked at level ${level}`);
        }
        for (const { index, hash } of answer.hashes) remote.push({ index, hash });
      }
      counters.add("hashesCompared", remote.length);
      if (level === tree.depth) return differingNodes(tree, level, remote);
      frontier = differingChildren(tree, level, remote);
      if (frontier.length === 0) return []; // equal by now: the trees changed under the descent
    }
    return [];
  }

  /** Key-level diff of the differing leaves, with the peer's digests. */
  private async diffLeaves(stream: LockstepStream, tree: MerkleTree, leaves: readonly number[]): Promise<LeafDiff> {
    const diff: LeafDiff = { onlyLocal: [], onlyRemote: [], different: [], remoteDigests: new Map() };
    for (const batch of chunks(leaves, MAX_LEAVES_PER_QUERY)) {
      stream.send({ step: { case: "leafEntries", value: { leaves: batch } } });
      const wanted = new Set(batch);
      const remote: { key: string; digest: Uint8Array }[] = [];
      for (;;) {
        const part = await stream.next("leafEntries");
        for (const { key, digest } of part.entries) {
          const token = hashKey(key);
          if (!key.isWellFormed() || !tree.covers(token) || !wanted.has(tree.leafOf(token))) {
            throw new ExchangeProtocolError(`the peer listed key ${JSON.stringify(key)} outside the leaves asked for`);
          }
          remote.push({ key, digest });
          diff.remoteDigests.set(key, digest);
        }
        if (part.last) break;
      }
      const local = batch.flatMap((leaf) => tree.leafEntries(leaf));
      const { onlyLocal, onlyRemote, different } = diffEntries(local, remote);
      diff.onlyLocal.push(...onlyLocal);
      diff.onlyRemote.push(...onlyRemote);
      diff.different.push(...different);
    }
    return diff;
  }

  /** Fetches the peer's records of the keys it holds differently and merges them here. */
  private async fetchFrom(stream: LockstepStream, peer: string, entry: RangeEntry, diff: LeafDiff, counters: ExchangeCounters): Promise<void> {
    const lackedHere = new Set(diff.onlyRemote);
    const keys = [...diff.onlyRemote, ...diff.different].filter((key) => {
      if (!lackedHere.has(key)) return true;
      const digest = diff.remoteDigests.get(key);
      if (digest === undefined || !this.recentlyWithheld(peer, key, digest)) return true;
      counters.add("keysWithheld", 1);
      return false;
    });
    for (const batch of chunks(keys, MAX_KEYS_PER_BATCH)) {
      await this.throttle(batch.length, 0);
      stream.send({ step: { case: "fetch", value: { keys: batch } } });
      const wanted = new Set(batch);
      const records: KeyRecord[] = [];
      for (;;) {
        const part = await stream.next("fetched");
        for (const record of part.records) {
          if (!wanted.delete(record.key)) throw new ExchangeProtocolError(`the peer sent key ${JSON.stringify(record.key)}, which was not asked for or sent twice`);
          records.push(record);
        }
        if (part.last) break;
      }
      const bytes = records.reduce((sum, r) => sum + r.record.byteLength, 0);
      counters.add("bytesMoved", bytes);
      await this.throttle(0, bytes);
      const sets = records.map(({ key, record }) => {
        if (record.byteLength === 0) return undefined; // gone from the peer meanwhile
        try {
          return { key, set: decodeSiblingSet(record) };
        } catch (err) {
          throw new ExchangeProtocolError(`the peer's record of ${JSON.stringify(key)} does not decode: ${(err as Error).message}`);
        }
      });
      counters.add("keysFetched", sets.filter((s) => s !== undefined).length);
      await Promise.all(
        sets.map(async (item) => {
          if (item === undefined) return;
          const { key, set } = item;
          // A node rebuilding lost its data: its lacking a key says nothing about a purge.
          const rebuildingHere = this.deps.rebuild?.pending(entry.range) ?? false;
          if (lackedHere.has(key) && !rebuildingHere && !(await this.mayCopyMissing(key, set, peer, entry, diff.remoteDigests.get(key)))) {
            counters.add("keysWithheld", 1);
            return;
          }
          const change = await this.deps.replica.apply(key, set);
          if (change.changed) counters.add("keysRepaired", 1);
        }),
      );
    }
  }

  /** Pushes this node's records of the keys it holds differently; the peer merges them. */
  private async pushTo(stream: LockstepStream, peer: string, entry: RangeEntry, diff: LeafDiff, counters: ExchangeCounters, peerRebuilding: boolean): Promise<void> {
    const lackedThere = new Set(diff.onlyLocal);
    // One record may use nearly all of a message the peer accepts; several share at most 1 MiB.
    const recordLimit = this.options.maxMessageBytes - MESSAGE_FRAMING_BYTES;
    const batchBudget = Math.min(MAX_CHUNK_BYTES, recordLimit);
    let batch: { key: string; record: Uint8Array }[] = [];
    let batchBytes = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      await this.throttle(batch.length, batchBytes);
      const ack = await stream.ask({ step: { case: "push", value: { records: batch } } }, "pushed");
      if (ack.applied !== batch.length) throw new ExchangeProtocolError(`the peer applied ${ack.applied} of ${batch.length} pushed records`);
      counters.add("keysPushed", batch.length);
      counters.add("keysRepaired", ack.changed);
      counters.add("bytesMoved", batch.reduce((sum, r) => sum + r.record.byteLength, 0));
      batch = [];
      batchBytes = 0;
    };
    for (const keys of chunks([...diff.onlyLocal, ...diff.different], MAX_KEYS_PER_BATCH)) {
      // Read after the fetches: a key both sides held differently goes back merged.
      const sets = await Promise.all(keys.map((key) => this.deps.storage.get(key)));
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i]!;
        const set = sets[i];
        if (set === undefined) continue; // purged meanwhile
        const record = encodeSiblingSet(set);
        if (lackedThere.has(key) && !peerRebuilding && !(await this.mayCopyMissing(key, set, peer, entry, undefined))) {
          counters.add("keysWithheld", 1);
          continue;
        }
        const size = record.byteLength + Buffer.byteLength(key) + 16;
        if (size > recordLimit) {
          this.deps.metrics.count("anti_entropy_records_too_large");
          this.deps.log.warn("anti-entropy: record larger than a message the peer accepts, not pushed (the peer fetches it when it opens the exchange)", {
            key,
            bytes: record.byteLength,
          });
          continue;
        }
        if (batch.length >= MAX_KEYS_PER_BATCH || batchBytes + size > batchBudget) await flush();
        batch.push({ key, record });
        batchBytes += size;
      }
    }
    await flush();
  }

  /**
   * The tombstone rule for a key one side lacks entirely: copy it if it is only tombstones or
   * young; otherwise only if a replica other than the two exchanging holds some version of it.
   */
  private async mayCopyMissing(key: string, set: SiblingSet, peer: string, entry: RangeEntry, knownDigest: Uint8Array | undefined): Promise<boolean> {
    if (missingKeyDecision(set, this.deps.now(), this.options.tombstoneGraceMs) === "copy") return true;
    const digest = knownDigest ?? versionDigest(set);
    if (this.recentlyWithheld(peer, key, digest)) return false;
    let everyoneAnswered = true;
    for (const node of entry.replicas) {
      if (node === this.options.nodeId || node === peer) continue;
      try {
        const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(5_000)]);
        if ((await this.deps.replicas.endpoint(node).read(key, signal)) !== undefined) return true;
      } catch {
        // Unreachable or failing: it cannot confirm the key now; ask again next time.
        everyoneAnswered = false;
      }
    }
    if (!everyoneAnswered) return false;
    this.rememberWithheld(peer, key, digest);
    this.deps.log.warn("anti-entropy withheld an old key that only one replica holds (it may have been deleted and purged elsewhere)", {
      key,
      peer,
      holder: knownDigest === undefined ? this.options.nodeId : peer,
    });
    return false;
  }

  private recentlyWithheld(peer: string, key: string, digest: Uint8Array): boolean {
    const seen = this.withheld.get(`${peer}\n${key}`);
    return seen !== undefined && seen.digest === Buffer.from(digest).toString("hex") && this.deps.now() - seen.at < WITHHELD_RECHECK_MS;
  }

  private rememberWithheld(peer: string, key: string, digest: Uint8Array): void {
    const id = `${peer}\n${key}`;
    this.withheld.delete(id);
    this.withheld.set(id, { digest: Buffer.from(digest).toString("hex"), at: this.deps.now() });
    if (this.withheld.size > MAX_WITHHELD_REMEMBERED) this.withheld.delete(this.withheld.keys().next().value!);
  }

  private throttle(keys: number, bytes: number): Promise<void> {
    return this.throttler.take(keys, bytes);
  }

  // --- responder --------------------------------------------------------------------------

  /** Answers a peer's Exchange stream, request by request. */
  async *respond(requests: AsyncIterable<ExchangeRequest>, signal: AbortSignal): AsyncGenerator<ResponseInit> {
    let open: RangeEntry | undefined;
    const requireOpen = (): RangeEntry => {
      if (open === undefined) throw new ConnectError("no range is open on this exchange stream (send open first)", Code.FailedPrecondition);
      return open;
    };
    for await (const request of requests) {
      if (signal.aborted || this.stopping.signal.aborted) return;
      const step = request.step;
      switch (step.case) {
        case "open": {
          const accepted = this.accept(step.value);
          open = typeof accepted === "string" ? undefined : accepted;
          yield {
            step: {
              case: "opened",
              value:
                typeof accepted === "string"
                  ? { accepted: false, reason: accepted }
                  : {
                      accepted: true,
                      root: accepted.tree.root(),
                      keyCount: BigInt(accepted.tree.size),
                      rebuilding: this.deps.rebuild?.pending(accepted.range) ?? false,
                    },
            },
          };
          break;
        }
        case "nodeHashes": {
          const { tree } = requireOpen();
          const { level, indices } = step.value;
          if (indices.length > MAX_INDICES_PER_QUERY) throw invalid(`at most ${MAX_INDICES_PER_QUERY} node hashes per query, got ${indices.length}`);
          yield { step: { case: "nodeHashes", value: { level, hashes: merkleCall(() => indices.map((index) => ({ index, hash: tree.hashAt(level, index) }))) } } };
          break;
        }
        case "leafEntries": {
          const { tree } = requireOpen();
          const { leaves } = step.value;
          if (leaves.length > MAX_LEAVES_PER_QUERY) throw invalid(`at most ${MAX_LEAVES_PER_QUERY} leaves per query, got ${leaves.length}`);
          const entries = merkleCall(() => leaves.flatMap((leaf) => tree.leafEntries(leaf)));
          let chunk: { key: string; digest: Uint8Array }[] = [];
          let bytes = 0;
          for (const { key, digest } of entries) {
            chunk.push({ key, digest });
            bytes += key.length * 3 + digest.byteLength;
            if (chunk.length >= MAX_ENTRIES_PER_CHUNK || bytes >= MAX_CHUNK_BYTES) {
              yield { step: { case: "leafEntries", value: { entries: chunk, last: false } } };
              chunk = [];
              bytes = 0;
            }
          }
          yield { step: { case: "leafEntries", value: { entries: chunk, last: true } } };
          break;
        }
        case "fetch": {
          const entry = requireOpen();
          const { keys } = step.value;
          if (keys.length > MAX_KEYS_PER_BATCH) throw invalid(`at most ${MAX_KEYS_PER_BATCH} keys per fetch, got ${keys.length}`);
          await this.throttle(keys.length, 0);
          const sets = await Promise.all(
            keys.map((key) => (key.isWellFormed() && key.length > 0 && entry.tree.covers(hashKey(key)) ? this.deps.storage.get(key) : undefined)),
          );
          let chunk: { key: string; record: Uint8Array }[] = [];
          let bytes = 0;
          let total = 0;
          for (let i = 0; i < keys.length; i++) {
            const set = sets[i];
            let record = set === undefined ? new Uint8Array() : encodeSiblingSet(set);
            if (record.byteLength > this.options.maxMessageBytes - MESSAGE_FRAMING_BYTES) {
              // Larger than any message a node accepts: it would fail the whole exchange. It
              // converges once a client resolves the key's siblings.
              this.deps.metrics.count("anti_entropy_records_too_large");
              this.deps.log.warn("anti-entropy: record larger than a message the peer accepts, not sent", { key: keys[i], bytes: record.byteLength });
              record = new Uint8Array();
            }
            if (chunk.length > 0 && bytes + record.byteLength > MAX_CHUNK_BYTES) {
              yield { step: { case: "fetched", value: { records: chunk, last: false } } };
              chunk = [];
              bytes = 0;
            }
            chunk.push({ key: keys[i]!, record });
            bytes += record.byteLength;
            total += record.byteLength;
          }
          this.deps.metrics.count("anti_entropy_keys_served", sets.filter((s) => s !== undefined).length);
          entry.stats.bytesMoved += total;
          await this.throttle(0, total);
          yield { step: { case: "fetched", value: { records: chunk, last: true } } };
          break;
        }
        case "push": {
          const entry = requireOpen();
          const { records } = step.value;
          if (records.length > MAX_KEYS_PER_BATCH) throw invalid(`at most ${MAX_KEYS_PER_BATCH} records per push, got ${records.length}`);
          const decoded = records.map(({ key, record }) => {
            if (key.length === 0 || !key.isWellFormed() || !entry.tree.covers(hashKey(key))) {
              throw invalid(`pushed key ${JSON.stringify(key)} is not in range (${entry.range.start}, ${entry.range.end}]`);
            }
            try {
              return { key, set: decodeSiblingSet(record) };
            } catch (err) {
              if (err instanceof InvalidEncodingError) throw invalid(`pushed record of ${JSON.stringify(key)} does not decode: ${err.message}`);
              throw err;
            }
          });
          const bytes = records.reduce((sum, r) => sum + r.record.byteLength, 0);
          await this.throttle(records.length, bytes);
          const changes = await Promise.all(decoded.map(({ key, set }) => this.deps.replica.apply(key, set)));
          const changed = changes.filter((c) => c.changed).length;
          this.deps.metrics.count("anti_entropy_keys_received", records.length);
          entry.stats.keysRepaired += changed;
          entry.stats.bytesMoved += bytes;
          yield { step: { case: "pushed", value: { applied: records.length, changed } } };
          break;
        }
        default:
          throw invalid("an exchange request must have a step");
      }
    }
  }

  /** The entry to compare for a peer's open, or why it is refused. */
  private accept(open: OpenRange): RangeEntry | string {
    if (open.hashFormatVersion !== HASH_FORMAT_VERSION) {
      return `hash format ${open.hashFormatVersion} differs from this node's ${HASH_FORMAT_VERSION}`;
    }
    if (open.range === undefined) throw invalid("open needs a range");
    const range = { start: open.range.start, end: open.range.end };
    const current = this.current;
    if (current === undefined || this.pending !== undefined || current.ring !== this.deps.ring()) {
      this.ringChanged();
      return "this node's trees are being built";
    }
    const entry = current.exact(range);
    if (entry === undefined) return `this node has no tree for range (${range.start}, ${range.end}] (the ring views differ)`;
    if (entry.tree.depth !== open.depth) return `depth ${open.depth} differs from this node's ${entry.tree.depth} for this range`;
    if (!entry.replicas.includes(open.nodeId)) return `${open.nodeId} is not a replica of range (${range.start}, ${range.end}] in this node's ring`;
    this.openedByPeer.set(`${open.nodeId}\n${boundsKey(range)}`, this.deps.now());
    return entry;
  }

  // --- status -----------------------------------------------------------------------------

  status(): AntiEntropyStatus {
    const now = this.deps.now();
    return {
      intervalMs: this.options.intervalMs,
      keysPerSecond: this.options.keysPerSecond,
      bytesPerSecond: this.options.bytesPerSecond,
      ready: this.current !== undefined && this.pending === undefined,
      ranges: (this.current?.entries ?? []).map(({ range, replicas, tree, stats }) => ({
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

interface LeafDiff {
  readonly onlyLocal: string[];
  readonly onlyRemote: string[];
  readonly different: string[];
  readonly remoteDigests: Map<string, Uint8Array>;
}

type CounterName = "hashesCompared" | "keysFetched" | "keysPushed" | "keysRepaired" | "bytesMoved" | "keysWithheld";
type Counters = Record<CounterName, number>;

function emptyCounters(): Counters {
  return { hashesCompared: 0, keysFetched: 0, keysPushed: 0, keysRepaired: 0, bytesMoved: 0, keysWithheld: 0 };
}

const METRIC_OF: Record<CounterName, string> = {
  hashesCompared: "anti_entropy_hashes_compared",
  keysFetched: "anti_entropy_keys_fetched",
  keysPushed: "anti_entropy_keys_pushed",
  keysRepaired: "anti_entropy_keys_repaired",
  bytesMoved: "anti_entropy_bytes_moved",
  keysWithheld: "anti_entropy_keys_withheld",
};

/** One exchange's counts, added to the node's metrics and the range's totals as they happen (a long exchange shows progress). */
class ExchangeCounters {
  readonly values = emptyCounters();

  constructor(
    private readonly metrics: Metrics,
    private readonly stats: RangeStats,
  ) {}

  add(name: CounterName, by: number): void {
    if (by === 0) return;
    this.values[name] += by;
    this.metrics.count(METRIC_OF[name], by);
    if (name === "keysRepaired") this.stats.keysRepaired += by;
    else if (name === "bytesMoved") this.stats.bytesMoved += by;
    else if (name === "keysFetched" || name === "keysPushed") this.stats.keysMoved += by;
  }
}

function failedResult(entry: RangeEntry, peer: string, detail: string, counters: Counters): RangeExchangeResult {
  return { range: entry.range, peer, outcome: "failed", detail, ...counters };
}

function describe(err: unknown): string {
  if (err instanceof ConnectError) return `${Code[err.code]}: ${err.rawMessage}`;
  return err instanceof Error ? err.message : String(err);
}

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

/** Runs a tree read on a peer's indices; out-of-range levels or indices are the peer's error. */
function merkleCall<T>(read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof MerkleError) throw invalid(err.message);
    throw err;
  }
}
