// The initiator: the side that opens an Exchange stream with a co-replica and, range by range,
// compares roots, descends into differing branches, diffs the differing leaves, fetches the keys
// the peer holds differently and pushes the ones this node holds differently. A key one side
// lacks entirely goes through the tombstone rule (ranges.ts, missingKeyDecision) first.
import { HASH_FORMAT_VERSION, type MerkleTree, type RemoteNodeHash, diffEntries, differingChildren, differingNodes } from "@dynamo-ts/merkle";
import type { KeyRecord } from "@dynamo-ts/proto";
import { hashKey, type TokenRange } from "@dynamo-ts/ring";
import { Code, ConnectError } from "@connectrpc/connect";
import { decodeSiblingSet, encodeSiblingSet, type SiblingSet } from "@dynamo-ts/vclock";
import type { Metrics } from "../../observability/metrics.js";
import {
  MAX_CHUNK_BYTES,
  MAX_INDICES_PER_QUERY,
  MAX_KEYS_PER_BATCH,
  MAX_LEAVES_PER_QUERY,
  MAX_WITHHELD_REMEMBERED,
  MESSAGE_FRAMING_BYTES,
  STEP_TIMEOUT_MS,
  WITHHELD_RECHECK_MS,
} from "./limits.js";
import { ExchangeProtocolError, LockstepStream } from "./lockstep.js";
import type { AntiEntropyDeps, AntiEntropyOptions } from "./options.js";
import { chunks, missingKeyDecision, versionDigest } from "./ranges.js";
import type { Throttle } from "./throttle.js";
import type { RangeEntry, RangeStats } from "./trees.js";

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

/** Starts the exchanges of this node's rounds and repairs; remembers the keys it withheld, per peer. */
export class Initiator {
  private readonly withheld = new Map<string, { digest: string; at: number }>();

  constructor(
    private readonly options: Pick<AntiEntropyOptions, "nodeId" | "tombstoneGraceMs" | "maxMessageBytes">,
    private readonly deps: Pick<AntiEntropyDeps, "client" | "storage" | "replica" | "replicas" | "metrics" | "log" | "now" | "rebuild">,
    private readonly throttle: Throttle,
    /** Abandons the exchanges in flight when anti-entropy stops. */
    private readonly stopping: AbortSignal,
  ) {}

  /** Exchanges `entries` with `peer` on one stream, range by range; a broken stream fails the ranges not reached. */
  async exchangeWithPeer(peer: string, entries: readonly RangeEntry[]): Promise<RangeExchangeResult[]> {
    const results: RangeExchangeResult[] = [];
    let stream: LockstepStream | undefined;
    try {
      stream = new LockstepStream(this.deps.client(peer), this.stopping, STEP_TIMEOUT_MS);
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
      await this.throttle.take(batch.length, 0);
      stream.send({ step: { case: "fetch", value: { keys: batch } } });
      const wanted = new Set(batch);
      const records: KeyRecord[] = [];
      for (;;) {
        const part = await stream.next("fetched");
        for (const record of part.records) {
          if (!wanted.delete(record.key))
            throw new ExchangeProtocolError(`the peer sent key ${JSON.stringify(record.key)}, which was not asked for or sent twice`);
          records.push(record);
        }
        if (part.last) break;
      }
      const bytes = records.reduce((sum, r) => sum + r.record.byteLength, 0);
      counters.add("bytesMoved", bytes);
      await this.throttle.take(0, bytes);
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
  private async pushTo(
    stream: LockstepStream,
    peer: string,
    entry: RangeEntry,
    diff: LeafDiff,
    counters: ExchangeCounters,
    peerRebuilding: boolean,
  ): Promise<void> {
    const lackedThere = new Set(diff.onlyLocal);
    // One record may use nearly all of a message the peer accepts; several share at most 1 MiB.
    const recordLimit = this.options.maxMessageBytes - MESSAGE_FRAMING_BYTES;
    const batchBudget = Math.min(MAX_CHUNK_BYTES, recordLimit);
    let batch: { key: string; record: Uint8Array }[] = [];
    let batchBytes = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      await this.throttle.take(batch.length, batchBytes);
      const ack = await stream.ask({ step: { case: "push", value: { records: batch } } }, "pushed");
      if (ack.applied !== batch.length) throw new ExchangeProtocolError(`the peer applied ${ack.applied} of ${batch.length} pushed records`);
      counters.add("keysPushed", batch.length);
      counters.add("keysRepaired", ack.changed);
      counters.add(
        "bytesMoved",
        batch.reduce((sum, r) => sum + r.record.byteLength, 0),
      );
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
        const signal = AbortSignal.any([this.stopping, AbortSignal.timeout(5_000)]);
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
}
