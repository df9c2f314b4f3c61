import type { TokenRange } from "@dynamo-ts/ring";
import { decodeSiblingSet, emptySet, encodeSiblingSet, sync } from "@dynamo-ts/vclock";
import type { SiblingSet } from "@dynamo-ts/vclock";
import { ClassicLevel } from "classic-level";
import {
  StorageClosedError,
  StorageCorruptionError,
  StorageFormatError,
  StorageInputError,
  StorageOpenError,
  StorageWriteError,
} from "./errors.js";
import { FORMAT_KEY, STORAGE_FORMAT, boundsOfRange, dataKey, parseDataKey, tokenOf, validateKey } from "./layout.js";

export interface StorageOptions {
  /** fsync each write batch before resolving (durable against power loss). Without it writes survive a process kill -9 (LevelDB's log is written before resolving) but not an OS crash. Default false. */
  sync?: boolean;
  /** Upper bound of operations per group-commit batch. Default 256. */
  maxBatchSize?: number;
}

export const DEFAULT_MAX_BATCH_SIZE = 256;

export interface StoredChange {
  readonly key: string;
  readonly token: number;
  readonly before: SiblingSet | undefined;
  readonly after: SiblingSet;
  /** False when the stored state already equalled the result: nothing was written. */
  readonly changed: boolean;
}

export interface StoredEntry {
  readonly key: string;
  readonly token: number;
  readonly set: SiblingSet;
}

export interface StorageStats {
  /** Group-commit batches written successfully. */
  readonly batches: number;
  /** LevelDB operations (puts and deletes) in those batches; writes to one key within a batch count once. */
  readonly operations: number;
  /** Calls (update, merge, removeIf) that issued a write and were acknowledged. */
  readonly writes: number;
  /** Batches whose write failed (their calls were rejected). */
  readonly failedBatches: number;
  /** Operations accepted but not yet written (queued or being written). */
  readonly pendingOperations: number;
}

type Database = ClassicLevel<Uint8Array, Uint8Array>;

interface PendingWrite {
  readonly dbKey: Uint8Array;
  /** Encoded sibling set to put, or null to delete the key. */
  readonly value: Uint8Array | null;
}

/** Writes gathered while the previous batch is being written; all written by one db.batch(). */
class Batch {
  readonly writes = new Map<string, PendingWrite>();
  /** Calls waiting on this batch that issued a write (for stats). */
  calls = 0;
  private readonly outcome = Promise.withResolvers<void>();

  constructor() {
    // Every caller awaits `done`; this only keeps a failure with no waiter left from being reported as unhandled.
    this.outcome.promise.catch(() => undefined);
  }

  get done(): Promise<void> {
    return this.outcome.promise;
  }

  settle(error?: unknown): void {
    if (error === undefined) this.outcome.resolve();
    else this.outcome.reject(error);
  }
}

/** A key's latest state that is not yet written: what read-modify-writes and reads must see. */
interface PendingState {
  readonly set: SiblingSet | undefined;
  readonly bytes: Uint8Array | null;
  readonly batch: Batch;
}

interface CurrentState {
  readonly set: SiblingSet | undefined;
  readonly bytes: Uint8Array | null;
  /** The batch that will make this state durable, if it is not yet. */
  readonly batch?: Batch;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

function isEmpty(set: SiblingSet): boolean {
  return set.siblings.length === 0 && set.clock.size === 0;
}

/**
 * Sibling sets in LevelDB, keyed by ring token so that a token range is a range scan.
 *
 * Read-modify-writes are atomic without locks: the read (the pending state or a synchronous LevelDB
 * get), the caller's function and the hand-off to the write queue all run in one synchronous step
 * on the event loop, so no other call can interleave for any key. Writes then wait for their
 * group-commit batch: calls arriving while a batch is being written are gathered into the next one
 * (one db.batch(), one fsync with `sync`), and resolve once it is written.
 */
export class Storage {
  private readonly syncWrites: boolean;
  private readonly maxBatchSize: number;
  /** Batches waiting to be written, oldest first; the last one is still gathering. */
  private readonly queue: Batch[] = [];
  private readonly pending = new Map<string, PendingState>();
  private writing: Promise<void> | undefined;
  private readsInFlight = 0;
  private readsDone: PromiseWithResolvers<void> | undefined;
  private closing: Promise<void> | undefined;
  private counters = { batches: 0, operations: 0, writes: 0, failedBatches: 0, pendingOperations: 0 };

  private readonly db: Database;
  /** The directory the store was opened in. */
  readonly location: string;

  // Plain fields, no parameter properties: tests run this file with Node's type stripping.
  private constructor(db: Database, location: string, options: StorageOptions) {
    this.db = db;
    this.location = location;
    this.syncWrites = options.sync ?? false;
    this.maxBatchSize = options.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE;
  }

  /** Opens (creating if needed) the store in `dir`. Fails with StorageFormatError when the directory holds another format or a foreign LevelDB database. */
  static async open(dir: string, options: StorageOptions = {}): Promise<Storage> {
    const maxBatchSize = options.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE;
    if (!Number.isSafeInteger(maxBatchSize) || maxBatchSize < 1) {
      throw new StorageInputError(`maxBatchSize must be a positive integer, got ${maxBatchSize}`);
    }
    const db: Database = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: "view", valueEncoding: "view" });
    try {
      await db.open({ createIfMissing: true });
    } catch (error) {
      const reason = error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
      throw new StorageOpenError(`cannot open storage at ${dir}: ${reason}`, { cause: error });
    }
    try {
      await checkFormat(db, dir);
    } catch (error) {
      await db.close();
      throw error;
    }
    return new Storage(db, dir, options);
  }

  /** The key's state, including a write not yet flushed; undefined when the key is absent. */
  async get(key: string): Promise<SiblingSet | undefined> {
    this.assertOpen("get");
    validateKey(key);
    const pending = this.pending.get(key);
    if (pending !== undefined) return pending.set;
    // Synchronous, like the read in update(): a key's state is normally in LevelDB's block cache
    // or the OS page cache, where a read takes microseconds, and the async get's trip through
    // the libuv thread pool cost more CPU than the read itself (workload C: 14% less node CPU
    // per operation, 16% more throughput; docs/performance.md).
    const bytes = this.db.getSync(dataKey(tokenOf(key), key));
    return bytes === undefined ? undefined : this.decode(key, bytes);
  }

  /**
   * Atomic per-key read-modify-write. `fn` sees the latest state (including writes not yet
   * flushed) and must not have side effects it relies on if it throws. Resolves once the result
   * is durable (per the `sync` option); rejects with the batch's error if its batch fails.
   */
  async update(key: string, fn: (current: SiblingSet | undefined) => SiblingSet): Promise<StoredChange> {
    this.assertOpen("update");
    validateKey(key);
    const token = tokenOf(key);
    const dbKey = dataKey(token, key);
    const current = this.current(key, dbKey);
    const after = fn(current.set);
    const bytes = encodeSiblingSet(after);
    const unchanged = current.bytes === null ? isEmpty(after) : equalBytes(current.bytes, bytes);
    if (unchanged) {
      // The caller is told the state is stored: if it is still on its way to disk, wait for it.
      if (current.batch !== undefined) await current.batch.done;
      return { key, token, before: current.set, after: current.set ?? after, changed: false };
    }
    const batch = this.enqueue(key, { dbKey, value: bytes });
    this.pending.set(key, { set: after, bytes, batch });
    await batch.done;
    return { key, token, before: current.set, after, changed: true };
  }

  /** Applies a remote state: update() with sync(current ?? emptySet(), incoming). */
  merge(key: string, incoming: SiblingSet): Promise<StoredChange> {
    return this.update(key, (current) => sync(current ?? emptySet(), incoming));
  }

  /** Deletes the key if `predicate(current)` holds at the moment of removal (checked atomically). Resolves true when removed. */
  async removeIf(key: string, predicate: (current: SiblingSet) => boolean): Promise<boolean> {
    this.assertOpen("removeIf");
    validateKey(key);
    const dbKey = dataKey(tokenOf(key), key);
    const current = this.current(key, dbKey);
    if (current.set === undefined || !predicate(current.set)) return false;
    const batch = this.enqueue(key, { dbKey, value: null });
    this.pending.set(key, { set: undefined, bytes: null, batch });
    await batch.done;
    return true;
  }

  /**
   * Keys whose token lies in `range` with their sets, in token order starting after range.start
   * (wrapping around the ring); the whole store from token 0 when `range` is undefined. Reads a
   * LevelDB snapshot per contiguous part: acknowledged writes are included, writes still in flight
   * may or may not be.
   */
  async *scan(range?: TokenRange): AsyncIterable<StoredEntry> {
    this.assertOpen("scan");
    for (const bounds of boundsOfRange(range)) {
      try {
        for await (const [dbKey, bytes] of this.db.iterator(bounds)) {
          const { key, token } = parseDataKey(dbKey);
          yield { key, token, set: this.decode(key, bytes) };
        }
      } catch (error) {
        if (this.closing !== undefined && !(error instanceof StorageCorruptionError)) {
          throw new StorageClosedError("continue a scan");
        }
        throw error;
      }
    }
  }

  /** Exact number of keys in `range` (the whole store when undefined). */
  async count(range?: TokenRange): Promise<number> {
    this.assertOpen("count");
    const parts = boundsOfRange(range);
    return this.tracked(async () => {
      let total = 0;
      for (const bounds of parts) {
        for await (const _ of this.db.keys(bounds)) total++;
      }
      return total;
    });
  }

  stats(): StorageStats {
    return { ...this.counters };
  }

  /** Stops accepting calls, waits for accepted writes to be written and reads to finish, then closes LevelDB. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.writing;
      if (this.readsInFlight > 0) {
        this.readsDone = Promise.withResolvers();
        await this.readsDone.promise;
      }
      await this.db.close();
    })();
    return this.closing;
  }

  /** Runs a bounded read that close() waits for (scans are not: close() ends them instead). */
  private async tracked<T>(read: () => Promise<T>): Promise<T> {
    this.readsInFlight++;
    try {
      return await read();
    } finally {
      if (--this.readsInFlight === 0) this.readsDone?.resolve();
    }
  }

  private assertOpen(operation: string): void {
    if (this.closing !== undefined) throw new StorageClosedError(operation);
  }

  private current(key: string, dbKey: Uint8Array): CurrentState {
    const pending = this.pending.get(key);
    if (pending !== undefined) return pending;
    // Synchronous on purpose: it makes the read-modify-write atomic (see the class comment).
    const bytes = this.db.getSync(dbKey);
    if (bytes === undefined) return { set: undefined, bytes: null };
    return { set: this.decode(key, bytes), bytes };
  }

  private decode(key: string, bytes: Uint8Array): SiblingSet {
    try {
      // LevelDB hands out Buffers; a plain view over the same memory keeps values uniform for callers.
      return decodeSiblingSet(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    } catch (error) {
      throw new StorageCorruptionError(`stored state of key ${JSON.stringify(key)} does not decode: ${(error as Error).message}`, { cause: error });
    }
  }

  private enqueue(key: string, write: PendingWrite): Batch {
    let batch = this.queue.at(-1);
    if (batch === undefined || (batch.writes.size >= this.maxBatchSize && !batch.writes.has(key))) {
      batch = new Batch();
      this.queue.push(batch);
    }
    if (!batch.writes.has(key)) this.counters.pendingOperations++;
    batch.writes.set(key, write);
    batch.calls++;
    this.writing ??= this.writeQueuedBatches();
    return batch;
  }

  /** Writes batches one at a time, in order, so that per-key order holds across batches. */
  private async writeQueuedBatches(): Promise<void> {
    // Let the calls made in the current synchronous burst join the first batch.
    await Promise.resolve();
    for (let batch = this.queue.shift(); batch !== undefined; batch = this.queue.shift()) {
      const operations = [...batch.writes.values()].map((write) =>
        write.value === null ? { type: "del" as const, key: write.dbKey } : { type: "put" as const, key: write.dbKey, value: write.value },
      );
      let failure: unknown;
      try {
        await this.db.batch(operations, { sync: this.syncWrites });
        this.counters.batches++;
        this.counters.operations += operations.length;
        this.counters.writes += batch.calls;
      } catch (error) {
        this.counters.failedBatches++;
        const reason = error instanceof Error ? error.message : String(error);
        failure = new StorageWriteError(`writing a batch of ${operations.length} operations failed: ${reason}`, { cause: error });
      }
      this.counters.pendingOperations -= operations.length;
      // Later states of these keys (in later batches) stay pending; the others are now read from disk.
      for (const key of batch.writes.keys()) {
        if (this.pending.get(key)?.batch === batch) this.pending.delete(key);
      }
      batch.settle(failure);
    }
    this.writing = undefined;
  }
}

async function checkFormat(db: Database, dir: string): Promise<void> {
  const marker = await db.get(FORMAT_KEY);
  if (marker !== undefined) {
    const found = new TextDecoder().decode(marker);
    if (found !== STORAGE_FORMAT) {
      throw new StorageFormatError(`${dir} holds storage format "${found}"; this version reads "${STORAGE_FORMAT}"`);
    }
    return;
  }
  for await (const _ of db.keys({ limit: 1 })) {
    throw new StorageFormatError(`${dir} holds a LevelDB database that @dynamo-ts/storage did not write (no format marker)`);
  }
  await db.put(FORMAT_KEY, new TextEncoder().encode(STORAGE_FORMAT), { sync: true });
}
