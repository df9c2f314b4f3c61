import { ClassicLevel } from "classic-level";
import {
  ALL_HINTS_RANGE,
  decodeHintCreatedAt,
  decodeHintKey,
  decodeHintValue,
  decodeSeqValue,
  encodeHintKey,
  encodeHintValue,
  encodeSeqValue,
  FORMAT_KEY,
  FORMAT_MARKER,
  formatHintId,
  MAX_SEQ,
  NEXT_SEQ_KEY,
  parseHintId,
  targetRange,
  validateKey,
  validateTarget,
} from "./codec.js";
import {
  HintStoreClosedError,
  HintStoreError,
  HintStoreFormatError,
  HintStoreFullError,
  HintStoreInputError,
  HintStoreOpenError,
} from "./errors.js";
import { TargetQueue } from "./target-queue.js";

export type NodeId = string;

export interface Hint {
  /** Unique and never reused by this store; ids of one target sort (as strings) in enqueue order. */
  readonly id: string;
  readonly target: NodeId;
  readonly key: string;
  /** Opaque encoded sibling set. */
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
}

export interface TargetSummary {
  readonly target: NodeId;
  readonly count: number;
  readonly oldestCreatedAt: number;
  readonly newestCreatedAt: number;
}

export interface HintCounters {
  /** Hints enqueued (made durable) since open. */
  stored: number;
  /** Hints removed by ack() (only real removals). */
  delivered: number;
  /** Hints removed by expire(). */
  expired: number;
  /** Failed delivery attempts reported through recordFailure(). */
  failed: number;
  /** Hints removed by dropTarget(). */
  dropped: number;
}

export const DEFAULT_TTL_MS = 3 * 60 * 60 * 1000;
export const DEFAULT_MAX_HINTS = 1_000_000;
export const DEFAULT_LIST_LIMIT = 100;

/** Upper bound on the operations of one group-commit batch; a single request is never split. */
const MAX_BATCH_OPS = 4096;

type RemovalReason = "delivered" | "expired" | "dropped";

interface PutOp {
  readonly type: "put";
  readonly target: string;
  readonly seq: number;
  readonly createdAt: number;
  readonly key: Buffer;
  readonly value: Buffer;
}

interface DelOp {
  readonly type: "del";
  readonly target: string;
  readonly seq: number;
  readonly key: Buffer;
}

interface WriteRequest {
  readonly ops: readonly (PutOp | DelOp)[];
  readonly reason: RemovalReason | null;
  readonly resolve: (removed: number) => void;
  readonly reject: (error: unknown) => void;
}

type Db = ClassicLevel<Buffer, Buffer>;
type DbOp = { type: "put"; key: Buffer; value: Buffer } | { type: "del"; key: Buffer };

/**
 * Durable hinted-handoff queue in its own LevelDB. All writes go through one group-commit pipeline:
 * requests that arrive while a batch is being written are written together in the next batch, and
 * the in-memory index (per-target queues) is updated only after the batch is on disk, in request
 * order. That keeps `targets()` exact and makes concurrent acks/expiry of the same hint count once.
 */
export class HintStore {
  private readonly db: Db;
  private readonly ttlMs: number;
  private readonly sync: boolean;
  private readonly now: () => number;
  private readonly maxHints: number;

  private readonly queues = new Map<string, TargetQueue>();
  /** Hints enqueued but not yet on disk: seq -> target. They count against maxHints. */
  private readonly pendingPuts = new Map<number, string>();
  private nextSeq: number;
  /** Highest createdAt handed out or on disk; keeps createdAt monotonic if the clock steps back. */
  private lastCreatedAt: number;
  private liveHints = 0;
  private readonly stats: HintCounters = { stored: 0, delivered: 0, expired: 0, failed: 0, dropped: 0 };

  private writeQueue: WriteRequest[] = [];
  private writing: Promise<void> | null = null;
  private readonly reads = new Set<Promise<unknown>>();
  private closing: Promise<void> | null = null;

  private constructor(db: Db, options: Required<HintStoreOptions>, recovered: RecoveredState) {
    this.db = db;
    this.ttlMs = options.ttlMs;
    this.sync = options.sync;
    this.now = options.now;
    this.maxHints = options.maxHints;
    this.nextSeq = recovered.nextSeq;
    this.lastCreatedAt = recovered.lastCreatedAt;
    for (const [target, queue] of recovered.queues) {
      this.queues.set(target, queue);
      this.liveHints += queue.count;
    }
  }

  /** Opens (creating if missing) the hint store in `dir` and rebuilds the per-target summaries from disk. */
  static async open(dir: string, options: HintStoreOptions = {}): Promise<HintStore> {
    if (typeof dir !== "string" || dir.length === 0) {
      throw new HintStoreInputError(`hint store directory must be a non-empty string, got ${typeof dir}`);
    }
    const resolved = resolveOptions(options);
    const db: Db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: "buffer", valueEncoding: "buffer" });
    try {
      await db.open({ createIfMissing: true });
    } catch (error) {
      throw new HintStoreOpenError(`cannot open hint store at ${dir}: ${messageOf(error)}`, { cause: error });
    }
    try {
      await checkFormat(db, dir);
      const recovered = await recover(db, dir);
      return new HintStore(db, resolved, recovered);
    } catch (error) {
      await db.close().catch(() => undefined);
      throw error;
    }
  }

  /** Stores a hint for `target`; durable (in LevelDB's log, fsynced if `sync`) before it resolves. */
  async enqueue(target: NodeId, key: string, record: Uint8Array): Promise<Hint> {
    this.assertOpen("enqueue");
    validateTarget(target);
    validateKey(key);
    if (!(record instanceof Uint8Array)) {
      throw new HintStoreInputError(`hint record must be a Uint8Array, got ${typeof record}`);
    }
    if (this.liveHints + this.pendingPuts.size >= this.maxHints) {
      throw new HintStoreFullError(target, this.maxHints);
    }
    if (this.nextSeq > MAX_SEQ) {
      throw new HintStoreError(`hint sequence numbers are exhausted (${MAX_SEQ})`);
    }
    const createdAt = Math.max(this.readClock(), this.lastCreatedAt);
    this.lastCreatedAt = createdAt;
    const seq = this.nextSeq++;
    const hint: Hint = Object.freeze({
      id: formatHintId(seq, target),
      target,
      key,
      record: new Uint8Array(record),
      createdAt,
    });
    const op: PutOp = {
      type: "put",
      target,
      seq,
      createdAt,
      key: encodeHintKey(target, seq),
      value: encodeHintValue(key, createdAt, record),
    };
    this.pendingPuts.set(seq, target);
    await this.submit([op], null);
    return hint;
  }

  /** The oldest `limit` hints of `target` (default 100), oldest first. */
  async list(target: NodeId, limit: number = DEFAULT_LIST_LIMIT): Promise<Hint[]> {
    this.assertOpen("list");
    validateTarget(target);
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new HintStoreInputError(`list limit must be a positive integer, got ${limit}`);
    }
    if (!this.queues.has(target) && ![...this.pendingPuts.values()].includes(target)) {
      return [];
    }
    return this.trackRead(async () => {
      const entries = await this.db.iterator({ ...targetRange(target), limit }).all();
      return entries.map(([dbKey, value]) => {
        const { seq } = decodeHintKey(dbKey);
        const { key, createdAt, record } = decodeHintValue(value);
        return Object.freeze({ id: formatHintId(seq, target), target, key, record, createdAt });
      });
    });
  }

  /** Every target with pending hints, sorted by target name. */
  targets(): TargetSummary[] {
    const summaries: TargetSummary[] = [];
    for (const [target, queue] of this.queues) {
      summaries.push({
        target,
        count: queue.count,
        oldestCreatedAt: queue.oldestCreatedAt,
        newestCreatedAt: queue.newestCreatedAt,
      });
    }
    return summaries.sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0));
  }

  /**
   * Removes delivered hints (given as hints or ids). Unknown and already-acknowledged ids are no-ops;
   * resolves to the number of hints actually removed. Throws HintStoreInputError for a string that is
   * not a hint id at all (a caller bug, not a replay).
   */
  async ack(hints: readonly Hint[] | readonly string[]): Promise<number> {
    this.assertOpen("ack");
    if (!Array.isArray(hints)) {
      throw new HintStoreInputError("ack() takes an array of hints or hint ids");
    }
    const ops: DelOp[] = [];
    const seen = new Set<string>();
    for (const hint of hints as readonly (Hint | string)[]) {
      const id = typeof hint === "string" ? hint : (hint as Partial<Hint> | null)?.id;
      const { seq, target } = parseHintId(id);
      if (seen.has(id as string)) {
        continue;
      }
      seen.add(id as string);
      if (this.queues.get(target)?.has(seq) || this.pendingPuts.get(seq) === target) {
        ops.push({ type: "del", target, seq, key: encodeHintKey(target, seq) });
      }
    }
    return ops.length === 0 ? 0 : this.submit(ops, "delivered");
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
    const cutoff = this.readClock() - this.ttlMs;
    const ops: DelOp[] = [];
    for (const [target, queue] of this.queues) {
      for (const seq of queue.seqsCreatedBefore(cutoff)) {
        ops.push({ type: "del", target, seq, key: encodeHintKey(target, seq) });
      }
    }
    return ops.length === 0 ? 0 : this.submit(ops, "expired");
  }

  /** Drops every hint for `target`, including ones whose enqueue is still in flight; resolves to how many. */
  async dropTarget(target: NodeId): Promise<number> {
    this.assertOpen("drop a target");
    validateTarget(target);
    const seqs = this.queues.get(target)?.liveSeqs() ?? [];
    for (const [seq, pendingTarget] of this.pendingPuts) {
      if (pendingTarget === target) {
        seqs.push(seq);
      }
    }
    const ops = seqs.map((seq): DelOp => ({ type: "del", target, seq, key: encodeHintKey(target, seq) }));
    return ops.length === 0 ? 0 : this.submit(ops, "dropped");
  }

  /** Number of hints stored (durable and not yet removed). */
  size(): number {
    return this.liveHints;
  }

  /** Counters since open (a copy). */
  counters(): HintCounters {
    return { ...this.stats };
  }

  /** Waits for pending writes, then closes the database. Idempotent. Other operations then throw HintStoreClosedError. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.writing;
      await Promise.allSettled(this.reads);
      await this.db.close();
    })();
    return this.closing;
  }

  private assertOpen(operation: string): void {
    if (this.closing !== null) {
      throw new HintStoreClosedError(operation);
    }
  }

  private readClock(): number {
    const now = this.now();
    if (!Number.isFinite(now)) {
      throw new HintStoreInputError(`the injected clock returned ${now}; expected finite milliseconds`);
    }
    return now;
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

  private submit(ops: readonly (PutOp | DelOp)[], reason: RemovalReason | null): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.writeQueue.push({ ops, reason, resolve, reject });
      this.writing ??= this.drainWrites();
    });
  }

  private async drainWrites(): Promise<void> {
    // Let requests made in the same tick (e.g. a Promise.all of enqueues) join the first batch.
    await Promise.resolve();
    while (this.writeQueue.length > 0) {
      const batch = this.takeBatch();
      const dbOps: DbOp[] = [];
      let maxPutSeq = -1;
      for (const request of batch) {
        for (const op of request.ops) {
          if (op.type === "put") {
            dbOps.push({ type: "put", key: op.key, value: op.value });
            maxPutSeq = Math.max(maxPutSeq, op.seq);
          } else {
            dbOps.push({ type: "del", key: op.key });
          }
        }
      }
      if (maxPutSeq >= 0) {
        // Persisted with the hints so a sequence number (and thus an id) is never handed out twice,
        // even after every hint was acknowledged and the store reopened.
        dbOps.push({ type: "put", key: NEXT_SEQ_KEY, value: encodeSeqValue(maxPutSeq + 1) });
      }
      try {
        await this.db.batch(dbOps, { sync: this.sync });
      } catch (error) {
        const failure = new HintStoreError(`hint store write failed: ${messageOf(error)}`, { cause: error });
        for (const request of batch) {
          for (const op of request.ops) {
            if (op.type === "put") {
              this.pendingPuts.delete(op.seq);
            }
          }
          request.reject(failure);
        }
        continue;
      }
      for (const request of batch) {
        try {
          request.resolve(this.apply(request));
        } catch (error) {
          // Only a broken internal invariant lands here; fail that request without wedging the pipeline.
          request.reject(error);
        }
      }
    }
    this.writing = null;
  }

  private takeBatch(): WriteRequest[] {
    let count = 0;
    let taken = 0;
    while (taken < this.writeQueue.length) {
      const size = this.writeQueue[taken]!.ops.length;
      if (taken > 0 && count + size > MAX_BATCH_OPS) {
        break;
      }
      count += size;
      taken++;
    }
    return this.writeQueue.splice(0, taken);
  }

  /** Applies a written request to the in-memory index; returns how many hints it really removed. */
  private apply(request: WriteRequest): number {
    let removed = 0;
    for (const op of request.ops) {
      if (op.type === "put") {
        this.pendingPuts.delete(op.seq);
        this.queueFor(op.target).append(op.seq, op.createdAt);
        this.liveHints++;
        this.stats.stored++;
      } else {
        const queue = this.queues.get(op.target);
        if (queue?.remove(op.seq)) {
          removed++;
          this.liveHints--;
          if (queue.count === 0) {
            this.queues.delete(op.target);
          }
        }
      }
    }
    if (request.reason !== null) {
      this.stats[request.reason] += removed;
    }
    return removed;
  }

  private queueFor(target: string): TargetQueue {
    let queue = this.queues.get(target);
    if (queue === undefined) {
      queue = new TargetQueue();
      this.queues.set(target, queue);
    }
    return queue;
  }
}

interface RecoveredState {
  readonly queues: Map<string, TargetQueue>;
  readonly nextSeq: number;
  readonly lastCreatedAt: number;
}

function resolveOptions(options: HintStoreOptions): Required<HintStoreOptions> {
  const { ttlMs = DEFAULT_TTL_MS, sync = false, now = Date.now, maxHints = DEFAULT_MAX_HINTS } = options;
  if (typeof ttlMs !== "number" || !Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new HintStoreInputError(`ttlMs must be a positive number of milliseconds, got ${ttlMs}`);
  }
  if (typeof sync !== "boolean") {
    throw new HintStoreInputError(`sync must be a boolean, got ${typeof sync}`);
  }
  if (typeof now !== "function") {
    throw new HintStoreInputError(`now must be a function returning milliseconds, got ${typeof now}`);
  }
  if (!Number.isSafeInteger(maxHints) || maxHints < 1) {
    throw new HintStoreInputError(`maxHints must be a positive integer, got ${maxHints}`);
  }
  return { ttlMs, sync, now, maxHints };
}

/** A new (empty) database gets the marker; anything else must already carry exactly ours. */
async function checkFormat(db: Db, dir: string): Promise<void> {
  const marker = await db.get(FORMAT_KEY);
  if (marker === undefined) {
    const anyEntry = await db.keys({ limit: 1 }).all();
    if (anyEntry.length > 0) {
      throw new HintStoreFormatError(`${dir} holds a LevelDB without a hint store format marker; refusing to use it`);
    }
    await db.put(FORMAT_KEY, Buffer.from(FORMAT_MARKER, "utf8"), { sync: true });
    return;
  }
  const found = marker.toString("utf8");
  if (found !== FORMAT_MARKER) {
    throw new HintStoreFormatError(`${dir} holds hint store format "${found}"; this code reads "${FORMAT_MARKER}"`);
  }
}

async function recover(db: Db, dir: string): Promise<RecoveredState> {
  const queues = new Map<string, TargetQueue>();
  let maxSeq = 0;
  let lastCreatedAt = Number.NEGATIVE_INFINITY;
  for await (const [dbKey, value] of db.iterator(ALL_HINTS_RANGE)) {
    const { target, seq } = decodeHintKey(dbKey);
    const createdAt = decodeHintCreatedAt(value);
    let queue = queues.get(target);
    if (queue === undefined) {
      queue = new TargetQueue();
      queues.set(target, queue);
    }
    try {
      queue.append(seq, createdAt);
    } catch (error) {
      throw new HintStoreFormatError(`hint store at ${dir} is inconsistent for target "${target}": ${messageOf(error)}`);
    }
    maxSeq = Math.max(maxSeq, seq);
    lastCreatedAt = Math.max(lastCreatedAt, createdAt);
  }
  const storedNextSeq = await db.get(NEXT_SEQ_KEY);
  const nextSeq = Math.max(storedNextSeq === undefined ? 1 : decodeSeqValue(storedNextSeq), maxSeq + 1);
  return { queues, nextSeq, lastCreatedAt };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
