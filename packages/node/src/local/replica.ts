// This node's side of replication: applying sibling sets that coordinators, hints, read
// repair and anti-entropy send, and keeping hints for other nodes (sloppy quorum).
import { Code, ConnectError } from "@connectrpc/connect";
import type { HintStore } from "@dynamo-ts/hintstore";
import { hashKey, TOKEN_SPACE } from "@dynamo-ts/ring";
import type { Storage, StoredChange, StoredRecord } from "@dynamo-ts/storage";
import { emptySet, encodeSiblingSet, equalSets, isDeleted, resolveLastWriteWins, type SiblingSet, sync } from "@dynamo-ts/vclock";
import type { ConflictResolution } from "../config.js";
import { compareKeys, type ScanPage, type ScannedRecord, type ScanPosition } from "../requests/export.js";
import { type ReplicaEndpoint, type VersionedRecord, versionedRecord } from "../requests/replicas.js";
import type { Metrics } from "../observability/metrics.js";
import type { ReplicaRebuild } from "./rebuild.js";
import { isHintStoreFailure, storeErrorToConnect } from "./store-health.js";

/** A change to the local store: the key's new state, or undefined once it was removed. */
export interface ReplicaChange {
  readonly key: string;
  readonly token: number;
  readonly after: SiblingSet | undefined;
  /** encodeSiblingSet(after), when the store had it at hand. */
  readonly afterBytes?: Uint8Array;
}

export class LocalReplica implements ReplicaEndpoint {
  private readonly changeListeners: Array<(change: ReplicaChange) => void> = [];

  constructor(
    private readonly nodeId: string,
    private readonly storage: Storage,
    private readonly hints: HintStore,
    private readonly resolution: ConflictResolution,
    private readonly metrics: Metrics,
    /** Set while this node rebuilds its data: reads of ranges not rebuilt yet are refused. */
    private readonly rebuild?: ReplicaRebuild,
    /** Told when the hint store fails to write (the data store reports its own failures). */
    private readonly onHintStoreFailure: (err: unknown) => void = () => {},
  ) {}

  /**
   * Store failures become the Connect errors callers act on (Unavailable: try another node).
   * Promise chains rather than async functions on the write path: every async layer cost a
   * promise and a turn of the microtask queue more, on every replica of every write.
   */
  private guarded<T>(operation: () => Promise<T>): Promise<T>;
  private guarded<T, U>(operation: () => Promise<T>, onStored: (value: T) => U): Promise<U>;
  private guarded<T, U>(operation: () => Promise<T>, onStored?: (value: T) => U): Promise<T | U> {
    let running: Promise<T>;
    try {
      running = operation();
    } catch (err) {
      return Promise.reject(this.storeError(err));
    }
    return running.then(onStored, this.storeError);
  }

  private readonly storeError = (err: unknown): never => {
    throw storeErrorToConnect(err, this.nodeId);
  };

  /** Calls `listener` after every change to the local store is durable (anti-entropy's trees). */
  onChange(listener: (change: ReplicaChange) => void): void {
    this.changeListeners.push(listener);
  }

  private notify(change: StoredChange): StoredChange {
    if (change.changed)
      for (const listener of this.changeListeners) listener({ key: change.key, token: change.token, after: change.after, afterBytes: change.afterBytes });
    return change;
  }

  /** Merges remote state into the local store through the causal merge (or LWW). */
  apply(key: string, set: SiblingSet): Promise<StoredChange> {
    return this.guarded(() => this.merge(key, set), this.notifyChange);
  }

  write(key: string, record: VersionedRecord, hintFor: string | undefined): Promise<void> {
    // A fallback keeps the write only as a hint: it never serves the data as its own.
    if (hintFor !== undefined && hintFor !== this.nodeId) return this.writeHint(key, record.encoded, hintFor);
    return this.guarded(() => this.merge(key, record.set), this.notifyReplicaWrite);
  }

  private merge(key: string, set: SiblingSet): Promise<StoredChange> {
    if (this.resolution === "lww") return this.storage.update(key, (current) => resolveLastWriteWins(sync(current ?? emptySet(), set)));
    return this.storage.merge(key, set);
  }

  private readonly notifyChange = (change: StoredChange): StoredChange => this.notify(change);

  private readonly notifyReplicaWrite = (change: StoredChange): void => {
    this.notify(change);
    this.metrics.count(change.changed ? "replica_writes_applied" : "replica_writes_unchanged");
  };

  private async writeHint(key: string, encoded: Uint8Array, hintFor: string): Promise<void> {
    try {
      await this.hints.enqueue(hintFor, key, encoded);
    } catch (err) {
      if (isHintStoreFailure(err)) this.onHintStoreFailure(err);
      else this.metrics.count("hints_refused");
      throw storeErrorToConnect(err, this.nodeId);
    }
    this.metrics.count("hints_stored");
  }

  read(key: string): Promise<SiblingSet | undefined> {
    if (this.rebuild && !this.rebuild.serves(hashKey(key))) return this.storage.get(key).then((set) => this.servedWhileRebuilding(key, set));
    return this.storage.get(key);
  }

  /** read(), with the state's bytes as stored: what a peer's read is answered with (no encoding per read). */
  readRecord(key: string): Promise<StoredRecord | undefined> {
    if (this.rebuild && !this.rebuild.serves(hashKey(key))) return this.storage.getRecord(key).then((record) => this.servedWhileRebuilding(key, record));
    return this.storage.getRecord(key);
  }

  /**
   * A key of a range this node is rebuilding: what it holds (written since it started) it serves
   * like any replica that may lag; an absent key it can't vouch for: it may be one it lost. Not
   * Unavailable: this node is up and takes writes. Serving what it holds keeps a brand-new
   * cluster (every node starts rebuilding until its co-replicas confirm) readable when a node
   * dies in its first seconds.
   */
  private servedWhileRebuilding<T>(key: string, held: T | undefined): T {
    if (held !== undefined) return held;
    this.metrics.count("replica_reads_refused_rebuilding");
    throw new ConnectError(`${this.nodeId} is rebuilding this key's range after starting without its data`, Code.FailedPrecondition);
  }

  /**
   * A page of the store in storage order (ReplicaService.Scan, for AdminService.Export): the keys
   * after `after` whose token is at most `lastToken`, at most `maxKeys` of them and, past the
   * first, about `maxBytes` of records. Refused while this node rebuilds its data.
   */
  async scan(after: ScanPosition, lastToken: number, limits: { readonly maxKeys: number; readonly maxBytes: number }): Promise<ScanPage> {
    if (this.rebuild?.active) {
      this.metrics.count("replica_scans_refused_rebuilding");
      throw new ConnectError(`${this.nodeId} is rebuilding its data after starting without it`, Code.FailedPrecondition);
    }
    if (after.token > lastToken) return { entries: [], done: true };
    // (start, lastToken] from the position's token on; from token 0, a range that wraps from the top.
    const range = { start: after.token === 0 ? TOKEN_SPACE - 1 : after.token - 1, end: lastToken };
    return this.guarded(async () => {
      const entries: ScannedRecord[] = [];
      let bytes = 0;
      for await (const { key, token, set } of this.storage.scan(range)) {
        if (token === after.token && after.key !== "" && compareKeys(key, after.key) <= 0) continue;
        if (entries.length >= limits.maxKeys || (entries.length > 0 && bytes >= limits.maxBytes)) return { entries, done: false };
        const record = versionedRecord(set);
        entries.push({ key, token, record });
        bytes += key.length + record.encoded.byteLength;
      }
      return { entries, done: true };
    });
  }

  /** Removes a tombstone-only key if it still holds exactly `record` (see tombstones.ts). */
  purge(key: string, record: Uint8Array): Promise<boolean> {
    const expected = Buffer.from(record);
    return this.removeIf(key, (current) => isDeleted(current) && expected.equals(encodeSiblingSet(current)), "tombstones_removed");
  }

  /**
   * Removes a key this node no longer owns (left behind by a join, see tombstones.ts) if it
   * still holds exactly `scanned`; a write that arrived since keeps it until the next sweep.
   */
  removeStray(key: string, scanned: SiblingSet): Promise<boolean> {
    return this.removeIf(key, (current) => equalSets(current, scanned), "stray_keys_removed");
  }

  private async removeIf(key: string, predicate: (current: SiblingSet) => boolean, counter: string): Promise<boolean> {
    const removed = await this.guarded(() => this.storage.removeIf(key, predicate));
    if (removed) {
      this.metrics.count(counter);
      for (const listener of this.changeListeners) listener({ key, token: hashKey(key), after: undefined });
    }
    return removed;
  }

  /**
   * Replaces the key's state by `replacement` if it is still exactly `expected` (its encoded
   * bytes; empty: absent). Resolves whether it was replaced. Only AdminService.RepairKey uses
   * this: every other write merges.
   */
  async reset(key: string, expected: Uint8Array, replacement: SiblingSet): Promise<boolean> {
    const wanted = Buffer.from(expected);
    let replaced = false;
    await this.update(key, (current) => {
      const holds = current === undefined ? wanted.byteLength === 0 : wanted.equals(encodeSiblingSet(current));
      replaced = holds;
      return holds ? replacement : (current ?? emptySet());
    });
    if (replaced) this.metrics.count("keys_reset");
    return replaced;
  }

  /** Runs fn under the store's per-key lock; how the coordinator issues new versions. */
  async update(key: string, fn: (current: SiblingSet | undefined) => SiblingSet): Promise<SiblingSet> {
    return (await this.updateRecord(key, fn)).set;
  }

  /** update(), with the state as the store encoded it (encoded again only when nothing changed). */
  updateRecord(key: string, fn: (current: SiblingSet | undefined) => SiblingSet): Promise<VersionedRecord> {
    return this.guarded(
      () => this.storage.update(key, fn),
      (stored): VersionedRecord => {
        const change = this.notify(stored);
        return { set: change.after, encoded: change.afterBytes ?? encodeSiblingSet(change.after) };
      },
    );
  }
}
