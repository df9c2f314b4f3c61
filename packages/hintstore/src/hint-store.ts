import { BatchPlan, type CurrentHint } from "./batch-plan.js";
import {
  decodeHintKey,
  decodeHintValue,
  encodeHintKey,
  encodeHintValue,
  formatHintId,
  MAX_SEQ,
  parseHintId,
  targetRange,
  validateKey,
  validateTarget,
} from "./codec.js";
import {
  type HintStoreCap,
  HintStoreClosedError,
  HintStoreError,
  HintStoreFormatError,
  HintStoreFullError,
  HintStoreInputError,
  HintStoreOpenError,
  HintStoreWriteError,
} from "./errors.js";
import type { HintIndex } from "./hint-index.js";
import { type Db, type MergeRecords, messageOf, openDatabase, type RecoveredState } from "./recovery.js";

export type { MergeRecords } from "./recovery.js";

export type NodeId = string;

export interface Hint {
  /** Unique and never reused by this store; ids of one target sort (as strings) in enqueue order. */
  readonly id: string;
  readonly target: NodeId;
  readonly key: string;
  /** Opaque encoded sibling set (after a merge: the merged record). */
  readonly record: Uint8Array;
  /** ms, from the injected clock; never decreases in enqueue order (see README). */
  readonly createdAt: number;
}

export interface HintStoreOptions {
  /** Hints older than this are dropped by expire(): a target gone that long is repaired by anti-entropy instead. Default 3 hours. */
  ttlMs?: number;
  /** fsync before enqueue/ack resolve. Default false (still survives kill -9: LevelDB logs before resolving). */
  sync?: boolean;
  /** Injected clock for tests. Default Date.now. */
  now?: () => number;
  /** Refuse new hints past this many stored (enqueue throws HintStoreFullError) so a long outage cannot fill the disk. Default 1,000,000. */
  maxHints?: number;
  /**
   * Combines the record of the hint already stored for a (target, key) with a newer one; the store keeps
   * one hint per (target, key). Must not modify its arguments. Default: the newer record replaces the older.
   */
  merge?: MergeRecords;
  /** Refuse hints that would make all targets' hints (UTF-8 key plus record bytes) exceed this. Default 1 GiB. */
  maxBytes?: number;
  /** Refuse hints that would make one target's hints (UTF-8 key plus record bytes) exceed this. Default 256 MiB. */
  maxBytesPerTarget?: number;
  /** Refuse a hint whose record (as given, or after merging) is larger than this. Default 16 MiB. */
  maxRecordBytes?: number;
}

export interface TargetSummary {
  readonly target: NodeId;
  readonly count: number;
  /** UTF-8 key plus record bytes of the target's hints. */
  readonly bytes: number;
  readonly oldestCreatedAt: number;
  readonly newestCreatedAt: number;
}

export interface HintCounters {
  /** Enqueues made durable since open (a merge counts here too). */
  stored: number;
  /** Enqueues that merged into the hint already stored for their (target, key). */
  merged: number;
  /** Hints removed by ack() (only real removals). */
  delivered: number;
  /** Hints removed by expire(). */
  expired: number;
  /** Failed delivery attempts reported through recordFailure(). */
  failed: number;
  /** Hints removed by dropTarget(). */
  dropped: number;
  /** Enqueues refused because of maxHints, maxBytes, maxBytesPerTarget or maxRecordBytes. */
  refused: number;
}

export const DEFAULT_TTL_MS = 3 * 60 * 60 * 1000;
export const DEFAULT_MAX_HINTS = 1_000_000;
export const DEFAULT_LIST_LIMIT = 100;
export const DEFAULT_MAX_BYTES = 1024 * 1024 * 1024;
export const DEFAULT_MAX_BYTES_PER_TARGET = 256 * 1024 * 1024;
export const DEFAULT_MAX_RECORD_BYTES = 16 * 1024 * 1024;

/** Default merge: the newer record replaces the older one. */
export const newerRecordWins: MergeRecords = (_older, newer) => newer;

/** Upper bounds of one group-commit batch; a single request is never split. */
const MAX_BATCH_OPS = 4096;
/** Records (new ones, and the stored ones they merge into) in memory at once for one batch. */
const MAX_BATCH_BYTES = 64 * 1024 * 1024;

type RemovalReason = "delivered" | "expired" | "dropped";

interface EnqueueRequest {
  readonly kind: "enqueue";
  readonly target: string;
  readonly key: string;
  readonly keyBytes: number;
  /** The store's own copy of the caller's record. */
  readonly record: Uint8Array;
  readonly seq: number;
  readonly createdAt: number;
  readonly resolve: (hint: Hint) => void;
  readonly reject: (error: unknown) => void;
}

type Removal =
  | { readonly kind: "ack"; readonly hints: readonly { readonly target: string; readonly seq: number }[] }
  | { readonly kind: "expire"; readonly cutoff: number }
  | { readonly kind: "drop"; readonly target: string };

interface RemovalRequest {
  readonly kind: "remove";
  readonly reason: RemovalReason;
  readonly removal: Removal;
  readonly resolve: (removed: number) => void;
  readonly reject: (error: unknown) => void;
}

type WriteRequest = EnqueueRequest | RemovalRequest;

interface Limits {
  readonly maxHints: number;
  readonly maxBytes: number;
  readonly maxBytesPerTarget: number;
  readonly maxRecordBytes: number;
}

/**
 * Durable hinted-handoff queue in its own LevelDB, holding at most one hint per (target, key).
 *
 * All writes go through one group-commit pipeline: requests that arrive while a batch is being written
 * are planned and written together in the next batch, in call order (see BatchPlan), and the in-memory
 * index is updated only after the batch is on disk. That keeps `targets()` exact, makes merges into one
 * key atomic even for concurrent enqueues, and makes concurrent acks/expiry of the same hint count once.
 */
export class HintStore {
  private db: Db;
  private readonly dir: string;
  private readonly ttlMs: number;
  private readonly sync: boolean;
  private readonly now: () => number;
  private readonly merge: MergeRecords;
  private readonly limits: Limits;

  private index: HintIndex;
  /** Enqueues accepted but not yet written (or refused): seq -> target. */
  private readonly pendingEnqueues = new Map<number, string>();
  private nextSeq: number;
  /** Highest createdAt handed out or on disk; keeps createdAt monotonic if the clock steps back. */
  private lastCreatedAt: number;
  private readonly stats: HintCounters = { stored: 0, merged: 0, delivered: 0, expired: 0, failed: 0, dropped: 0, refused: 0 };
  private lastError: Error | undefined;
  /**
   * Set when a batch failed to write, cleared by a successful reopen(). Until then writes are refused:
   * LevelDB itself refuses further writes after a failed sync or compaction, but not after a failed
   * unsynced log append, after which a later record in the same log block may be unreadable at recovery.
   * Refusing here makes "a failed write needs a reopen" hold whatever failed.
   */
  private writeFailure: HintStoreWriteError | null = null;

  private writeQueue: WriteRequest[] = [];
  private writing: Promise<void> | null = null;
  private readonly reads = new Set<Promise<unknown>>();
  private reopening: Promise<void> | null = null;
  /** Why the database is not open after a failed reopen(); operations reject with it until a reopen succeeds. */
  private unavailable: HintStoreError | null = null;
  private closing: Promise<void> | null = null;

  private constructor(db: Db, dir: string, options: Required<HintStoreOptions>, recovered: RecoveredState) {
    this.db = db;
    this.dir = dir;
    this.ttlMs = options.ttlMs;
    this.sync = options.sync;
    this.now = options.now;
    this.merge = options.merge;
    this.limits = {
      maxHints: options.maxHints,
      maxBytes: options.maxBytes,
      maxBytesPerTarget: options.maxBytesPerTarget,
      maxRecordBytes: options.maxRecordBytes,
    };
    this.index = recovered.index;
    this.nextSeq = recovered.nextSeq;
    this.lastCreatedAt = recovered.lastCreatedAt;
  }

  /**
   * Opens (creating if missing) the hint store in `dir` and rebuilds the in-memory index from disk. Several
   * hints of one (target, key), as an older version of this package stored them, are merged into one here.
   */
  static async open(dir: string, options: HintStoreOptions = {}): Promise<HintStore> {
    if (typeof dir !== "string" || dir.length === 0) {
      throw new HintStoreInputError(`hint store directory must be a non-empty string, got ${typeof dir}`);
    }
    const resolved = resolveOptions(options);
    const { db, recovered } = await openDatabase(dir, {
      merge: resolved.merge,
      sync: resolved.sync,
      readClock: () => checkedClock(resolved.now),
      nextSeqFloor: 1,
      createdAtFloor: Number.NEGATIVE_INFINITY,
    });
    return new HintStore(db, dir, resolved, recovered);
  }

  /**
   * Stores a hint for `target`, or, if one is already stored (or being stored) for the same (target, key),
   * replaces it with `merge(older, record)` under a new id at the back of the target's queue. Durable (in
   * LevelDB's log, fsynced if `sync`) before it resolves; resolves with the hint as stored. Rejects with
   * HintStoreFullError (changing nothing) if a cap would be exceeded, and with the merge's own error if it throws.
   */
  async enqueue(target: NodeId, key: string, record: Uint8Array): Promise<Hint> {
    this.assertOpen("enqueue");
    validateTarget(target);
    validateKey(key);
    if (!(record instanceof Uint8Array)) {
      throw new HintStoreInputError(`hint record must be a Uint8Array, got ${typeof record}`);
    }
    if (record.length > this.limits.maxRecordBytes) {
      throw this.refuse(target, "maxRecordBytes", record.length, record.length);
    }
    // Copied now: the caller may reuse its buffer as soon as this call returns.
    const ownRecord = new Uint8Array(record);
    const reopening = this.waitIfReopening();
    if (reopening !== undefined) {
      await reopening;
    }
    this.assertWritable();
    if (this.nextSeq > MAX_SEQ) {
      throw new HintStoreError(`hint sequence numbers are exhausted (${MAX_SEQ})`);
    }
    const createdAt = Math.max(this.readClock(), this.lastCreatedAt);
    this.lastCreatedAt = createdAt;
    const seq = this.nextSeq++;
    const keyBytes = Buffer.byteLength(key, "utf8");
    return new Promise<Hint>((resolve, reject) => {
      this.pendingEnqueues.set(seq, target);
      this.submit({ kind: "enqueue", target, key, keyBytes, record: ownRecord, seq, createdAt, resolve, reject });
    });
  }

  /**
   * The oldest hints of `target`, oldest first: at most `limit` (default 100), and, if `maxBytes` is given,
   * no more once their records add up to `maxBytes` or more (at least one hint is returned if any is stored).
   * So a delivery round holds at most about `maxBytes` plus one record in memory.
   */
  async list(target: NodeId, limit: number = DEFAULT_LIST_LIMIT, maxBytes?: number): Promise<Hint[]> {
    this.assertOpen("list");
    validateTarget(target);
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new HintStoreInputError(`list limit must be a positive integer, got ${limit}`);
    }
    if (maxBytes !== undefined && (!Number.isSafeInteger(maxBytes) || maxBytes < 1)) {
      throw new HintStoreInputError(`list maxBytes must be a positive integer, got ${maxBytes}`);
    }
    const reopening = this.waitIfReopening();
    if (reopening !== undefined) {
      await reopening;
    }
    const queue = this.index.queue(target);
    if (queue === undefined) {
      return [];
    }
    // Pick the hints from the index (which knows every record's size), so that no record past the budget
    // is read from disk at all.
    let count = 0;
    let recordBytes = 0;
    let lastSeq = -1;
    for (const entry of queue.entries()) {
      count++;
      recordBytes += entry.recordBytes;
      lastSeq = entry.seq;
      if (count >= limit || (maxBytes !== undefined && recordBytes >= maxBytes)) {
        break;
      }
    }
    const range = { gte: targetRange(target).gte, lte: encodeHintKey(target, lastSeq), limit: count };
    return this.trackRead(async () => {
      const entries = await this.db.iterator(range).all();
      return entries.map(([dbKey, value]) => {
        const { seq } = decodeHintKey(dbKey);
        const { key, createdAt, record } = decodeHintValue(value);
        return Object.freeze({ id: formatHintId(seq, target), target, key, record, createdAt });
      });
    });
  }

  /** Every target with hints, sorted by target name. In memory, exact, synchronous. */
  targets(): TargetSummary[] {
    const summaries: TargetSummary[] = [];
    for (const [target, queue] of this.index.entries()) {
      summaries.push({
        target,
        count: queue.count,
        bytes: queue.bytes,
        oldestCreatedAt: queue.oldestCreatedAt,
        newestCreatedAt: queue.newestCreatedAt,
      });
    }
    return summaries.sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0));
  }

  /**
   * Removes delivered hints (given as hints or ids). Unknown and already-acknowledged ids are no-ops, and so
   * is the id of a hint that was since merged into a newer one (the merged hint stays); resolves to the
   * number of hints actually removed. Throws HintStoreInputError for a string that is not a hint id at all
   * (a caller bug, not a replay).
   */
  async ack(hints: readonly Hint[] | readonly string[]): Promise<number> {
    this.assertOpen("ack");
    if (!Array.isArray(hints)) {
      throw new HintStoreInputError("ack() takes an array of hints or hint ids");
    }
    const parsed: { target: string; seq: number }[] = [];
    const seen = new Set<string>();
    for (const hint of hints as readonly (Hint | string)[]) {
      const id = typeof hint === "string" ? hint : (hint as Partial<Hint> | null)?.id;
      const { seq, target } = parseHintId(id);
      if (!seen.has(id as string)) {
        seen.add(id as string);
        parsed.push({ seq, target });
      }
    }
    const reopening = this.waitIfReopening();
    if (reopening !== undefined) {
      await reopening;
    }
    this.assertWritable();
    // Only ids that are stored or being stored can remove anything; skip the write for the rest.
    const candidates = parsed.filter(({ target, seq }) => this.index.queue(target)?.has(seq) || this.pendingEnqueues.get(seq) === target);
    return candidates.length === 0 ? 0 : this.submitRemoval("delivered", { kind: "ack", hints: candidates });
  }

  /** Records a failed delivery attempt (a counter for metrics; the hints stay queued). */
  recordFailure(target: NodeId): void {
    this.assertOpen("record a failure");
    validateTarget(target);
    this.stats.failed++;
  }

  /** Drops every hint older than ttlMs (createdAt < now - ttlMs); resolves to how many were dropped. */
  async expire(): Promise<number> {
    this.assertOpen("expire");
    const reopening = this.waitIfReopening();
    if (reopening !== undefined) {
      await reopening;
    }
    this.assertWritable();
    const cutoff = this.readClock() - this.ttlMs;
    const anyOld = [...this.index.entries()].some(([, queue]) => queue.oldestCreatedAt < cutoff);
    return anyOld || this.pendingEnqueues.size > 0 ? this.submitRemoval("expired", { kind: "expire", cutoff }) : 0;
  }

  /** Drops every hint for `target`, including ones whose enqueue is still in flight; resolves to how many. */
  async dropTarget(target: NodeId): Promise<number> {
    this.assertOpen("drop a target");
    validateTarget(target);
    const reopening = this.waitIfReopening();
    if (reopening !== undefined) {
      await reopening;
    }
    this.assertWritable();
    const any = this.index.queue(target) !== undefined || [...this.pendingEnqueues.values()].includes(target);
    return any ? this.submitRemoval("dropped", { kind: "drop", target }) : 0;
  }

  /** Number of hints stored (durable and not yet removed). */
  size(): number {
    return this.index.count;
  }

  /** UTF-8 key plus record bytes of every hint stored (what maxBytes counts). */
  bytes(): number {
    return this.index.bytes;
  }

  /** Counters since open (a copy). */
  counters(): HintCounters {
    return { ...this.stats };
  }

  /**
   * The error of the last write that failed (disk full, I/O error, read-only file system), until a write
   * succeeds again. After a failed write the store refuses writes (HintStoreWriteError) until reopen(), so
   * this stays set until a write after a successful reopen() went through: while it is set, report the
   * store as "hint store not writable: <message>" (and call reopen() from time to time).
   */
  lastWriteError(): Error | undefined {
    return this.lastError;
  }

  /**
   * Closes and reopens the LevelDB, after the writes already accepted have finished (or failed), and
   * rebuilds the in-memory index from what is on disk, so it matches what is durable. This is how the store
   * becomes writable again after a failed write. Operations called meanwhile wait for it. If the database
   * cannot be opened again, this rejects (HintStoreOpenError or HintStoreFormatError) and every operation
   * except the in-memory readers rejects with HintStoreOpenError until a later reopen() succeeds. Counters
   * carry on, and hint ids are never reused across it.
   */
  reopen(): Promise<void> {
    if (this.closing !== null) {
      return Promise.reject(new HintStoreClosedError("reopen"));
    }
    this.reopening ??= this.reopenDatabase().finally(() => {
      this.reopening = null;
    });
    return this.reopening;
  }

  /** Waits for pending writes, then closes the database. Idempotent. Other operations then throw HintStoreClosedError. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.reopening?.catch(() => undefined);
      while (this.writing !== null) {
        await this.writing;
      }
      await Promise.allSettled(this.reads);
      await this.db.close();
    })();
    return this.closing;
  }

  private async reopenDatabase(): Promise<void> {
    while (this.writing !== null) {
      await this.writing;
    }
    await Promise.allSettled(this.reads);
    await this.db.close().catch(() => undefined);
    try {
      const { db, recovered } = await openDatabase(this.dir, {
        merge: this.merge,
        sync: this.sync,
        readClock: () => this.readClock(),
        nextSeqFloor: this.nextSeq,
        createdAtFloor: this.lastCreatedAt,
      });
      this.db = db;
      this.index = recovered.index;
      this.nextSeq = recovered.nextSeq;
      this.lastCreatedAt = recovered.lastCreatedAt;
      this.unavailable = null;
      this.writeFailure = null;
    } catch (error) {
      const reason = error instanceof HintStoreError ? error : new HintStoreOpenError(messageOf(error), { cause: error });
      this.unavailable = reason;
      throw reason;
    }
  }

  /** Synchronous (no await) unless a reopen is under way or failed, so call order is kept otherwise. */
  private waitIfReopening(): Promise<void> | undefined {
    if (this.reopening === null && this.unavailable === null) {
      return undefined;
    }
    return (async () => {
      while (this.reopening !== null) {
        await this.reopening.catch(() => undefined);
      }
      if (this.unavailable !== null) {
        throw new HintStoreOpenError(`hint store is not open (${this.unavailable.message}); call reopen()`, { cause: this.unavailable });
      }
    })();
  }

  private assertWritable(): void {
    if (this.writeFailure !== null) {
      throw this.notWritable();
    }
  }

  private notWritable(): HintStoreWriteError {
    const reason = this.writeFailure?.message ?? "unknown";
    return new HintStoreWriteError(`hint store is not writable after a failed write (${reason}); reopen() it`, { cause: this.writeFailure });
  }

  private assertOpen(operation: string): void {
    if (this.closing !== null) {
      throw new HintStoreClosedError(operation);
    }
  }

  private readClock(): number {
    return checkedClock(this.now);
  }

  private refuse(target: string, cap: HintStoreCap, current: number, requested: number): HintStoreFullError {
    this.stats.refused++;
    return new HintStoreFullError({ target, cap, current, requested, limit: this.limits[cap], maxHints: this.limits.maxHints });
  }

  private async trackRead<T>(read: () => Promise<T>): Promise<T> {
    const promise = read();
    this.reads.add(promise);
    try {
      return await promise;
    } finally {
      this.reads.delete(promise);
    }
  }

  private submitRemoval(reason: RemovalReason, removal: Removal): Promise<number> {
    return new Promise<number>((resolve, reject) => this.submit({ kind: "remove", reason, removal, resolve, reject }));
  }

  private submit(request: WriteRequest): void {
    this.writeQueue.push(request);
    this.writing ??= this.drainWrites();
  }

  private async drainWrites(): Promise<void> {
    // Let requests made in the same tick (e.g. a Promise.all of enqueues) join the first batch.
    await Promise.resolve();
    try {
      while (this.writeQueue.length > 0) {
        await this.writeBatch(this.takeBatch());
      }
    } finally {
      this.writing = null;
    }
  }

  private takeBatch(): WriteRequest[] {
    let ops = 0;
    let bytes = 0;
    let taken = 0;
    while (taken < this.writeQueue.length) {
      const request = this.writeQueue[taken]!;
      const requestOps = request.kind === "enqueue" ? 2 : request.removal.kind === "ack" ? request.removal.hints.length : 1;
      const requestBytes = request.kind === "enqueue" ? request.record.length + (this.index.queue(request.target)?.entryForKey(request.key)?.bytes ?? 0) : 0;
      if (taken > 0 && (ops + requestOps > MAX_BATCH_OPS || bytes + requestBytes > MAX_BATCH_BYTES)) {
        break;
      }
      ops += requestOps;
      bytes += requestBytes;
      taken++;
    }
    return this.writeQueue.splice(0, taken);
  }

  /**
   * Plans the requests in call order against the index plus what earlier requests of the batch did, writes
   * the batch, and only then updates the index and settles the requests. A request that fails while being
   * planned (a cap, a throwing merge) is rejected on its own and leaves no trace in the batch.
   */
  private async writeBatch(batch: readonly WriteRequest[]): Promise<void> {
    if (this.writeFailure !== null) {
      // Queued behind the batch that failed: nothing more is written until reopen().
      const failure = this.notWritable();
      for (const request of batch) {
        this.finish(request);
        request.reject(failure);
      }
      return;
    }
    const plan = new BatchPlan(this.index);
    const storedRecords = this.readRecordsToMerge(batch);
    const planned: { request: WriteRequest; settle: () => void }[] = [];
    for (const request of batch) {
      try {
        const settle = request.kind === "enqueue" ? await this.planEnqueue(plan, request, storedRecords) : this.planRemoval(plan, request);
        planned.push({ request, settle });
      } catch (error) {
        this.finish(request);
        request.reject(error);
      }
    }
    const ops = plan.dbOps();
    if (ops.length > 0) {
      try {
        await this.db.batch(ops, { sync: this.sync });
      } catch (error) {
        const failure = new HintStoreWriteError(`hint store write failed: ${messageOf(error)}`, { cause: error });
        this.lastError = failure;
        this.writeFailure = failure;
        for (const { request } of planned) {
          this.finish(request);
          request.reject(failure);
        }
        return;
      }
      this.lastError = undefined;
    }
    try {
      plan.apply();
    } catch (error) {
      // Only a broken internal invariant lands here; fail the batch's requests without wedging the pipeline.
      for (const { request } of planned) {
        this.finish(request);
        request.reject(error);
      }
      return;
    }
    for (const { request, settle } of planned) {
      this.finish(request);
      settle();
    }
  }

  /**
   * Starts reading, in parallel, the stored record of every key the batch's enqueues will merge into (the
   * first enqueue of a key in the batch merges into the durable hint; later ones into the one before).
   */
  private readRecordsToMerge(batch: readonly WriteRequest[]): Map<number, Promise<Uint8Array>> {
    const reads = new Map<number, Promise<Uint8Array>>();
    for (const request of batch) {
      const stored = request.kind === "enqueue" ? this.index.queue(request.target)?.entryForKey(request.key) : undefined;
      if (request.kind === "enqueue" && stored !== undefined && !reads.has(stored.seq)) {
        const read = this.readStoredRecord(request.target, stored.seq, request.key);
        read.catch(() => undefined); // it may end up unused (an earlier request removed the hint); no unhandled rejection
        reads.set(stored.seq, read);
      }
    }
    return reads;
  }

  private async readStoredRecord(target: string, seq: number, key: string): Promise<Uint8Array> {
    let value: Buffer | undefined;
    try {
      value = await this.db.get(encodeHintKey(target, seq));
    } catch (error) {
      throw new HintStoreError(`hint store read failed: ${messageOf(error)}`, { cause: error });
    }
    if (value === undefined) {
      throw new HintStoreFormatError(`hint ${formatHintId(seq, target)} is in the index but not on disk`);
    }
    const decoded = decodeHintValue(value);
    if (decoded.key !== key) {
      throw new HintStoreFormatError(`hint ${formatHintId(seq, target)} holds key ${JSON.stringify(decoded.key)}, not ${JSON.stringify(key)}`);
    }
    return decoded.record;
  }

  private async planEnqueue(plan: BatchPlan, request: EnqueueRequest, storedRecords: Map<number, Promise<Uint8Array>>): Promise<() => void> {
    const { target, key, keyBytes, seq, createdAt } = request;
    const current = plan.current(target, key);
    const record = current === undefined ? request.record : this.mergeInto(current, request, await this.olderRecord(current, request, storedRecords));
    if (record.length > this.limits.maxRecordBytes) {
      throw this.refuse(target, "maxRecordBytes", record.length, record.length);
    }
    const growth = keyBytes + record.length - (current?.bytes ?? 0);
    if (current === undefined && plan.count() >= this.limits.maxHints) {
      throw this.refuse(target, "maxHints", plan.count(), 1);
    }
    // A merge that does not grow the hint is always accepted, even over a cap (e.g. one lowered since).
    if (growth > 0 && plan.bytes() + growth > this.limits.maxBytes) {
      throw this.refuse(target, "maxBytes", plan.bytes(), growth);
    }
    if (growth > 0 && plan.targetBytes(target) + growth > this.limits.maxBytesPerTarget) {
      throw this.refuse(target, "maxBytesPerTarget", plan.targetBytes(target), growth);
    }
    const value = encodeHintValue(key, createdAt, record);
    const storedRecord = new Uint8Array(value.buffer, value.byteOffset + value.length - record.length, record.length);
    if (current !== undefined) {
      plan.remove(target, current.seq);
    }
    plan.put({ target, seq, key, keyBytes, createdAt, value, record: storedRecord });
    const hint: Hint = Object.freeze({ id: formatHintId(seq, target), target, key, record: storedRecord, createdAt });
    return () => {
      this.stats.stored++;
      if (current !== undefined) {
        this.stats.merged++;
      }
      request.resolve(hint);
    };
  }

  private olderRecord(current: CurrentHint, request: EnqueueRequest, storedRecords: Map<number, Promise<Uint8Array>>): Promise<Uint8Array> {
    if (current.planned !== undefined) {
      // A copy: the planned record is a view into a value this batch is about to write.
      return Promise.resolve(current.planned.record.slice());
    }
    return storedRecords.get(current.seq) ?? this.readStoredRecord(request.target, current.seq, request.key);
  }

  private mergeInto(current: CurrentHint, request: EnqueueRequest, older: Uint8Array): Uint8Array {
    const merged = this.merge(older, request.record);
    if (!(merged instanceof Uint8Array)) {
      throw new HintStoreInputError(
        `the merge option returned ${typeof merged}, not a Uint8Array (merging into hint ${formatHintId(current.seq, request.target)})`,
      );
    }
    return merged;
  }

  private planRemoval(plan: BatchPlan, request: RemovalRequest): () => void {
    const { removal } = request;
    let removed = 0;
    const remove = (target: string, seq: number) => {
      if (plan.remove(target, seq)) {
        removed++;
      }
    };
    if (removal.kind === "ack") {
      for (const { target, seq } of removal.hints) {
        remove(target, seq);
      }
    } else if (removal.kind === "expire") {
      for (const [target, seq] of plan.createdBefore(removal.cutoff)) {
        remove(target, seq);
      }
    } else {
      for (const seq of plan.targetSeqs(removal.target)) {
        remove(removal.target, seq);
      }
    }
    return () => {
      this.stats[request.reason] += removed;
      request.resolve(removed);
    };
  }

  private finish(request: WriteRequest): void {
    if (request.kind === "enqueue") {
      this.pendingEnqueues.delete(request.seq);
    }
  }
}

function checkedClock(now: () => number): number {
  const time = now();
  if (!Number.isFinite(time)) {
    throw new HintStoreInputError(`the injected clock returned ${time}; expected finite milliseconds`);
  }
  return time;
}

function resolveOptions(options: HintStoreOptions): Required<HintStoreOptions> {
  const {
    ttlMs = DEFAULT_TTL_MS,
    sync = false,
    now = Date.now,
    maxHints = DEFAULT_MAX_HINTS,
    merge = newerRecordWins,
    maxBytes = DEFAULT_MAX_BYTES,
    maxBytesPerTarget = DEFAULT_MAX_BYTES_PER_TARGET,
    maxRecordBytes = DEFAULT_MAX_RECORD_BYTES,
  } = options;
  if (typeof ttlMs !== "number" || !Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new HintStoreInputError(`ttlMs must be a positive number of milliseconds, got ${ttlMs}`);
  }
  if (typeof sync !== "boolean") {
    throw new HintStoreInputError(`sync must be a boolean, got ${typeof sync}`);
  }
  if (typeof now !== "function") {
    throw new HintStoreInputError(`now must be a function returning milliseconds, got ${typeof now}`);
  }
  if (typeof merge !== "function") {
    throw new HintStoreInputError(`merge must be a function (older, newer) => merged, got ${typeof merge}`);
  }
  for (const [name, value] of Object.entries({ maxHints, maxBytes, maxBytesPerTarget, maxRecordBytes })) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new HintStoreInputError(`${name} must be a positive integer, got ${value}`);
    }
  }
  return { ttlMs, sync, now, maxHints, merge, maxBytes, maxBytesPerTarget, maxRecordBytes };
}
