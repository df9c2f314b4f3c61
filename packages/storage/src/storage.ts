import type { TokenRange } from "@dynamo-ts/ring";
import { decodeSiblingSet, emptySet, encodeSiblingSet, sync } from "@dynamo-ts/vclock";
import type { SiblingSet } from "@dynamo-ts/vclock";
import fs from "node:fs/promises";
import path from "node:path";
import { ClassicLevel } from "classic-level";
import type { Iterator as LevelIterator } from "classic-level";
import {
  StorageClosedError,
  StorageCorruptionError,
  StorageError,
  StorageFormatError,
  StorageInputError,
  StorageOpenError,
  StorageUnavailableError,
  StorageWriteError,
} from "./errors.js";
import { ChurnTable } from "./churn-table.js";
import { FORMAT_KEY, PROBE_FILE, PROBE_KEY, STORAGE_FORMAT, boundsOfRange, dataKey, parseDataKey, tokenOf, validateKey } from "./layout.js";
import type { KeyBounds } from "./layout.js";

export interface StorageOptions {
  /** fsync each write batch before resolving (durable against power loss). Without it writes survive a process kill -9 (LevelDB's log is written before resolving) but not an OS crash. Default false. */
  sync?: boolean;
  /** Upper bound of operations per group-commit batch. Default 256. */
  maxBatchSize?: number;
  /** Told of each batch written: its operations and how long the write (and fsync) took. For metrics; must not throw. */
  onBatchWritten?: (operations: number, seconds: number) => void;
}

export const DEFAULT_MAX_BATCH_SIZE = 256;

export interface StoredChange {
  readonly key: string;
  readonly token: number;
  readonly before: SiblingSet | undefined;
  readonly after: SiblingSet;
  /** False when the stored state already equalled the result: nothing was written. */
  readonly changed: boolean;
  /** encodeSiblingSet(after) when changed (the bytes written): listeners that hash it need not encode it again. */
  readonly afterBytes?: Uint8Array;
}

/** A key's state as get() returns it, with its encoding as stored. */
export interface StoredRecord {
  readonly set: SiblingSet;
  /** encodeSiblingSet(set): the bytes in the store (or on their way to it). */
  readonly bytes: Uint8Array;
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
  /** Batches that were not written (their calls were rejected): the batch whose write failed, and the batches queued behind it, which are refused without being tried. */
  readonly failedBatches: number;
  /** Operations accepted but not yet written (queued or being written). */
  readonly pendingOperations: number;
}

/** Whether the store takes writes; see Storage.health(). */
export interface StorageHealth {
  /** False from a failed write (a batch, a probe) until a reopen() succeeds. */
  readonly writable: boolean;
  /** Why the store is not writable: the latest failure (a later failed reopen replaces the first reason). */
  readonly error?: string;
  /** When the store stopped being writable (milliseconds since the epoch, Date.now()). */
  readonly since?: number;
}

/** Told when the store goes from writable to not writable, with the error that made it so. */
export type WriteFailureListener = (error: StorageWriteError | StorageUnavailableError) => void;

type Database = ClassicLevel<Uint8Array, Uint8Array>;

/** Call open() on the result right away: abstract-level opens an instance left alone by itself (with createIfMissing) on the next tick. */
function newDatabase(dir: string): Database {
  return new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: "view", valueEncoding: "view" });
}

/** A short reason for an error message: LevelDB's open errors wrap the useful message in `cause`. */
function reasonOf(error: unknown): string {
  if (!(error instanceof StorageError) && error instanceof Error && error.cause instanceof Error) return error.cause.message;
  return error instanceof Error ? error.message : String(error);
}

interface PendingWrite {
  readonly dbKey: Uint8Array;
  /** Encoded sibling set to put, or null to delete the key. */
  readonly value: Uint8Array | null;
}

/** Writes gathered while the previous batch is being written; all written by one db.batch(). */
class Batch {
  readonly writes = new Map<string, PendingWrite>();
  /** A probe (put and delete of the probe key, synced) rather than data: takes no other writes, and is tried even when the store is failing (reopen's probe). */
  readonly probe: boolean;
  /** Calls waiting on this batch that issued a write (for stats). */
  calls = 0;
  private readonly outcome = Promise.withResolvers<void>();

  constructor(probe = false) {
    this.probe = probe;
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

/** LevelDB hands out Buffers; a plain view over the same memory keeps values uniform for callers. */
function plainView(bytes: Uint8Array): Uint8Array {
  return bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
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
 *
 * A failed batch makes the store not writable (health()) until reopen(): LevelDB can keep a sticky
 * error after a failed write, and a write it acknowledges after a failed log append can be lost at
 * the next open (the partial record leaves the log misaligned), so later writes are refused
 * rather than risked.
 */
export class Storage {
  private readonly syncWrites: boolean;
  private readonly maxBatchSize: number;
  private readonly onBatchWritten: ((operations: number, seconds: number) => void) | undefined;
  /** Batches waiting to be written, oldest first; the last one is still gathering. */
  private readonly queue: Batch[] = [];
  /** Keys with a write not yet flushed (a ChurnTable, not a Map: see churn-table.ts). */
  private readonly pending = new ChurnTable<PendingState>();
  private writing: Promise<void> | undefined;
  private readsInFlight = 0;
  private readsDone: PromiseWithResolvers<void> | undefined;
  private closing: Promise<void> | undefined;
  private counters = { batches: 0, operations: 0, writes: 0, failedBatches: 0, pendingOperations: 0 };
  /** Why and since when the store is not writable; undefined while it is. */
  private failure: { error: StorageWriteError | StorageUnavailableError; since: number } | undefined;
  /** Set while the store has no open database (a reopen() failed to open it). */
  private unavailable: StorageUnavailableError | undefined;
  private reopening: Promise<void> | undefined;
  /** Incremented when reopen() closes the database, so that a scan can tell its iterator was closed under it. */
  private generation = 0;
  private readonly failureListeners = new Set<WriteFailureListener>();
  /** The directory probe under way: probe() and reopen() share it rather than race on one file. */
  private directoryProbe: Promise<void> | undefined;

  private db: Database;
  /** The directory the store was opened in. */
  readonly location: string;
  /** True when open() created the store: the directory had no store in it (new, or wiped). False when it opened existing data. */
  readonly created: boolean;

  // Plain fields, no parameter properties: tests run this file with Node's type stripping.
  private constructor(db: Database, location: string, options: StorageOptions, created: boolean) {
    this.db = db;
    this.location = location;
    this.created = created;
    this.syncWrites = options.sync ?? false;
    this.maxBatchSize = options.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE;
    this.onBatchWritten = options.onBatchWritten;
  }

  /**
   * Opens (creating if needed) the store in `dir`; `created` tells which. Fails with
   * StorageFormatError when the directory holds another format or a foreign LevelDB database.
   */
  static async open(dir: string, options: StorageOptions = {}): Promise<Storage> {
    const maxBatchSize = options.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE;
    if (!Number.isSafeInteger(maxBatchSize) || maxBatchSize < 1) {
      throw new StorageInputError(`maxBatchSize must be a positive integer, got ${maxBatchSize}`);
    }
    const db = newDatabase(dir);
    try {
      await db.open({ createIfMissing: true });
    } catch (error) {
      throw new StorageOpenError(`cannot open storage at ${dir}: ${reasonOf(error)}`, { cause: error });
    }
    let created: boolean;
    try {
      created = await checkFormat(db, dir, true);
    } catch (error) {
      await db.close();
      if (error instanceof StorageError) throw error;
      // Reading the marker, or writing it into a new store (a full or read-only disk).
      throw new StorageOpenError(`cannot open storage at ${dir}: ${reasonOf(error)}`, { cause: error });
    }
    return new Storage(db, dir, options, created);
  }

  /** Whether the store takes writes, and if not why and since when. */
  health(): StorageHealth {
    if (this.failure === undefined) return { writable: true };
    return { writable: false, error: this.failure.error.message, since: this.failure.since };
  }

  /**
   * Calls `listener` each time the store goes from writable to not writable (once per failure, not
   * once per failed call), before the calls of the failed batch are rejected. A listener that
   * throws is reported with process.emitWarning and does not affect the store. Returns a function
   * that removes the listener.
   */
  onWriteFailure(listener: WriteFailureListener): () => void {
    // A wrapper, so that adding the same function twice registers it twice and each removal removes one.
    const entry: WriteFailureListener = (error) => listener(error);
    this.failureListeners.add(entry);
    return () => {
      this.failureListeners.delete(entry);
    };
  }

  /**
   * Closes LevelDB and opens it again at the same location, then proves it takes writes with a
   * probe (see probe()); health() is writable again once that succeeds. The way back from a failed
   * write: LevelDB keeps a sticky error after some failed writes until it is closed.
   *
   * It first lets the queued batches settle (a failing store refuses them) and count() calls
   * finish; calls made while it runs wait for it (then fail with StorageUnavailableError if it
   * left no open database); a scan in progress continues after it from where it was.
   *
   * Rejects with StorageWriteError when the directory does not take a small synced file write
   * (checked before LevelDB is closed, so that reads keep working: nothing was reopened) or when
   * the probe write fails after reopening; with StorageUnavailableError when LevelDB does not
   * open again or the directory no longer holds this store (it is never created anew here). The
   * store then stays not writable with that reason, and reopen() can be called again. Concurrent
   * calls share one reopen. StorageClosedError after close().
   */
  reopen(): Promise<void> {
    if (this.closing !== undefined) return Promise.reject(new StorageClosedError("reopen"));
    this.reopening ??= this.reopenNow().finally(() => {
      this.reopening = undefined;
    });
    return this.reopening;
  }

  /**
   * Proves that the store still takes writes, before a write has to fail to show it (a data
   * directory remounted read-only, a full disk): creates, fsyncs and deletes a small file in the
   * directory, then puts and deletes a metadata key in LevelDB with sync, in order with the
   * queued batches. On failure the store becomes not writable (onWriteFailure listeners are told)
   * and this rejects with StorageWriteError. A store that is already not writable is not probed:
   * this rejects with StorageWriteError at once, and only reopen() makes it writable again.
   */
  async probe(): Promise<void> {
    await this.ready("probe");
    this.assertWritable();
    await this.probeDirectory();
    // The directory check took a while: a reopen or close may have started since.
    await this.ready("probe");
    this.assertWritable();
    await this.enqueueProbe().done;
  }

  /** The key's state, including a write not yet flushed; undefined when the key is absent. */
  async get(key: string): Promise<SiblingSet | undefined> {
    if (this.reopening !== undefined) await this.afterReopen();
    return this.currentOf(key).set;
  }

  /**
   * get(), with the state's encoding as stored (encodeSiblingSet of it): a replica answering a
   * peer's read ships these bytes instead of encoding the set it just decoded. The bytes are
   * still decoded here, which is the check that the stored state is intact.
   */
  async getRecord(key: string): Promise<StoredRecord | undefined> {
    if (this.reopening !== undefined) await this.afterReopen();
    const { set, bytes } = this.currentOf(key);
    return set === undefined ? undefined : { set, bytes: bytes! };
  }

  /** What get() and getRecord() read, once no reopen is in progress. */
  private currentOf(key: string): CurrentState {
    this.assertUsable("get");
    validateKey(key);
    return this.current(key, dataKey(tokenOf(key), key));
  }

  /**
   * Atomic per-key read-modify-write. `fn` sees the latest state (including writes not yet
   * flushed) and must not have side effects it relies on if it throws. Resolves once the result
   * is durable (per the `sync` option); rejects with the batch's error if its batch fails.
   */
  update(key: string, fn: (current: SiblingSet | undefined) => SiblingSet): Promise<StoredChange> {
    // Only waits during a reopen: otherwise the read, fn and the hand-off to the queue stay one
    // synchronous step. Not an async function: every replica write comes through here, and an
    // async frame with its await was two promises per write where one reaction will do.
    if (this.reopening !== undefined) return this.afterReopen().then(() => this.updateNow(key, fn));
    try {
      return this.updateNow(key, fn);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** update() once no reopen is in progress; throws (synchronously) what update() rejects with. */
  private updateNow(key: string, fn: (current: SiblingSet | undefined) => SiblingSet): Promise<StoredChange> {
    this.assertUsable("update");
    validateKey(key);
    const token = tokenOf(key);
    const dbKey = dataKey(token, key);
    const current = this.current(key, dbKey);
    const after = fn(current.set);
    const bytes = encodeSiblingSet(after);
    const unchanged = current.bytes === null ? isEmpty(after) : equalBytes(current.bytes, bytes);
    if (unchanged) {
      const result: StoredChange = { key, token, before: current.set, after: current.set ?? after, changed: false };
      // The caller is told the state is stored: if it is still on its way to disk, wait for it.
      return current.batch === undefined ? Promise.resolve(result) : current.batch.done.then(() => result);
    }
    const batch = this.enqueue(key, { dbKey, value: bytes });
    this.pending.set(key, { set: after, bytes, batch });
    return batch.done.then(() => ({ key, token, before: current.set, after, changed: true, afterBytes: bytes }));
  }

  /** Applies a remote state: update() with sync(current ?? emptySet(), incoming). */
  merge(key: string, incoming: SiblingSet): Promise<StoredChange> {
    return this.update(key, (current) => sync(current ?? emptySet(), incoming));
  }

  /** Deletes the key if `predicate(current)` holds at the moment of removal (checked atomically). Resolves true when removed. */
  async removeIf(key: string, predicate: (current: SiblingSet) => boolean): Promise<boolean> {
    if (this.reopening !== undefined) await this.afterReopen();
    this.assertUsable("removeIf");
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
   * may or may not be. A reopen() while it runs is waited for, and the scan goes on after the last
   * key it yielded (with a new snapshot). A stored key or value that does not decode ends it with
   * StorageCorruptionError.
   */
  async *scan(range?: TokenRange): AsyncIterable<StoredEntry> {
    await this.ready("scan");
    for (const bounds of boundsOfRange(range)) yield* this.scanPart(bounds);
  }

  private async *scanPart(bounds: KeyBounds): AsyncIterable<StoredEntry> {
    let after: Uint8Array | undefined;
    let iterator: LevelIterator<Database, Uint8Array, Uint8Array> | undefined;
    /** The database generation the iterator reads. */
    let generation = this.generation;
    try {
      for (;;) {
        let entry: StoredEntry;
        try {
          if (iterator === undefined) {
            generation = this.generation;
            iterator = this.db.iterator(after === undefined ? bounds : { gt: after, lt: bounds.lt });
          }
          const next = await iterator.next();
          if (next === undefined) return;
          const [dbKey, bytes] = next;
          const { key, token } = parseDataKey(dbKey);
          entry = { key, token, set: this.decode(key, bytes) };
          after = dbKey;
        } catch (error) {
          if (error instanceof StorageError) throw error;
          if (this.closing !== undefined) throw new StorageClosedError("continue a scan");
          if (generation === this.generation && this.reopening === undefined) throw error;
          // reopen() closed the iterator with its database: carry on after the last key yielded.
          const stale = iterator;
          iterator = undefined;
          await stale?.close().catch(() => undefined);
          await this.ready("continue a scan");
          continue;
        }
        yield entry;
      }
    } finally {
      await iterator?.close().catch(() => undefined);
    }
  }

  /** Exact number of keys in `range` (the whole store when undefined). A reopen() waits for it; it waits for a reopen() in progress. */
  async count(range?: TokenRange): Promise<number> {
    await this.ready("count");
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

  /**
   * Stops accepting calls, waits for a reopen() in progress, accepted writes to be written (or
   * refused) and reads to finish, then closes LevelDB. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.reopening?.catch(() => undefined);
      await this.writing;
      await this.readsSettled();
      await this.db.close();
    })();
    return this.closing;
  }

  private async reopenNow(): Promise<void> {
    // Every call that could touch LevelDB now waits for this.reopening; let those already under way settle.
    await this.writing;
    await this.readsSettled();
    // Keep the open database (and reads) when the directory plainly cannot take a write.
    await this.probeDirectory();

    this.generation++;
    try {
      await this.db.close();
    } catch {
      // Opening again reports what matters (e.g. the directory still locked).
    }
    let db: Database | undefined;
    try {
      // Never create here: a directory that lost its store must not come back as an empty one.
      // LevelDB would leave a LOCK and a LOG file behind before finding no database; look first.
      await fs.access(path.join(this.location, "CURRENT")).catch((error: unknown) => {
        throw new StorageFormatError(`${this.location} holds no LevelDB database any more (${reasonOf(error)})`, { cause: error });
      });
      // open() right after the constructor: an instance left alone opens itself with createIfMissing on the next tick.
      db = newDatabase(this.location);
      await db.open({ createIfMissing: false });
      await checkFormat(db, this.location, false);
    } catch (error) {
      await db?.close().catch(() => undefined);
      const unavailable = new StorageUnavailableError(`cannot reopen storage at ${this.location}: ${reasonOf(error)}`, { cause: error });
      this.unavailable = unavailable;
      // this.db stays the closed database: every call checks `unavailable` first.
      this.markFailing(unavailable);
      throw unavailable;
    }
    this.db = db;
    this.unavailable = undefined;
    await this.probeDirectory();
    await this.enqueueProbe().done;
    this.failure = undefined;
  }

  /** Waits for count() calls under way (close() and reopen() must not close LevelDB under them). */
  private async readsSettled(): Promise<void> {
    while (this.readsInFlight > 0) {
      this.readsDone ??= Promise.withResolvers();
      await this.readsDone.promise;
    }
  }

  /** Runs a bounded read that close() and reopen() wait for (scans are not: close() ends them, reopen() resumes them). */
  private async tracked<T>(read: () => Promise<T>): Promise<T> {
    this.readsInFlight++;
    try {
      return await read();
    } finally {
      if (--this.readsInFlight === 0) {
        this.readsDone?.resolve();
        this.readsDone = undefined;
      }
    }
  }

  private assertOpen(operation: string): void {
    if (this.closing !== undefined) throw new StorageClosedError(operation);
  }

  /** Open, and with a database: not closed, not left without one by a failed reopen. */
  private assertUsable(operation: string): void {
    this.assertOpen(operation);
    if (this.unavailable !== undefined) {
      throw new StorageUnavailableError(`storage at ${this.location} is unavailable: cannot ${operation} (${this.unavailable.message}); reopen() it`, {
        cause: this.unavailable,
      });
    }
  }

  private assertWritable(): void {
    const failure = this.failure;
    if (failure === undefined) return;
    const since = new Date(failure.since).toISOString();
    throw new StorageWriteError(`storage at ${this.location} is not writable since ${since} (${failure.error.message}); reopen() it to recover`, {
      cause: failure.error,
    });
  }

  /** Waits until no reopen() is in progress (whatever its outcome). */
  private async afterReopen(): Promise<void> {
    while (this.reopening !== undefined) await this.reopening.catch(() => undefined);
  }

  /** Waits for a reopen() in progress, then checks that the store can serve `operation`. */
  private async ready(operation: string): Promise<void> {
    if (this.reopening !== undefined) await this.afterReopen();
    this.assertUsable(operation);
  }

  /** The store is not writable from now on (if it was); listeners hear of it once, at the change. */
  private markFailing(error: StorageWriteError | StorageUnavailableError): void {
    const wasWritable = this.failure === undefined;
    this.failure = { error, since: this.failure?.since ?? Date.now() };
    if (!wasWritable) return;
    for (const listener of [...this.failureListeners]) {
      try {
        listener(error);
      } catch (listenerError) {
        process.emitWarning(`a storage onWriteFailure listener threw: ${reasonOf(listenerError)}`, { type: "StorageWarning" });
      }
    }
  }

  /** Creates, fsyncs and deletes a small file in the store's directory; marks the store failing when that fails. */
  private probeDirectory(): Promise<void> {
    this.directoryProbe ??= this.writeProbeFile().finally(() => {
      this.directoryProbe = undefined;
    });
    return this.directoryProbe;
  }

  private async writeProbeFile(): Promise<void> {
    const file = path.join(this.location, PROBE_FILE);
    try {
      const handle = await fs.open(file, "w");
      try {
        await handle.writeFile("probe\n");
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.rm(file);
    } catch (error) {
      await fs.rm(file, { force: true }).catch(() => undefined);
      const failure = new StorageWriteError(`storage directory ${this.location} does not take a write: ${reasonOf(error)}`, { cause: error });
      this.markFailing(failure);
      throw failure;
    }
  }

  private current(key: string, dbKey: Uint8Array): CurrentState {
    const pending = this.pending.get(key);
    if (pending !== undefined) return pending;
    // Synchronous on purpose: it makes the read-modify-write atomic (see the class comment). For
    // get() it is also the faster read: a key's state is normally in LevelDB's block cache or the
    // OS page cache, where a read takes microseconds, and the async get's trip through the libuv
    // thread pool cost more CPU than the read itself (workload C: 14% less node CPU per
    // operation, 16% more throughput; docs/performance.md).
    const stored = this.db.getSync(dbKey);
    if (stored === undefined) return { set: undefined, bytes: null };
    const bytes = plainView(stored);
    return { set: this.decode(key, bytes), bytes };
  }

  private decode(key: string, bytes: Uint8Array): SiblingSet {
    try {
      return decodeSiblingSet(plainView(bytes));
    } catch (error) {
      throw new StorageCorruptionError(`stored state of key ${JSON.stringify(key)} does not decode: ${(error as Error).message}`, { cause: error });
    }
  }

  /** Queues a write; refused (throws StorageWriteError, nothing changes) while the store is not writable. */
  private enqueue(key: string, write: PendingWrite): Batch {
    this.assertWritable();
    let batch = this.queue.at(-1);
    if (batch === undefined || batch.probe || (batch.writes.size >= this.maxBatchSize && !batch.writes.has(key))) {
      batch = new Batch();
      this.queue.push(batch);
    }
    if (!batch.writes.has(key)) this.counters.pendingOperations++;
    batch.writes.set(key, write);
    batch.calls++;
    this.writing ??= this.writeQueuedBatches();
    return batch;
  }

  /** Queues a probe of LevelDB, in order with the data batches. */
  private enqueueProbe(): Batch {
    const batch = new Batch(true);
    this.queue.push(batch);
    this.writing ??= this.writeQueuedBatches();
    return batch;
  }

  /** Writes batches one at a time, in order, so that per-key order holds across batches. */
  private async writeQueuedBatches(): Promise<void> {
    // Let every call made in this turn of the event loop join the first batch, not only those of
    // the current synchronous burst: writes arriving on other sockets in the same poll phase
    // share one LevelDB batch (one trip to the thread pool, one fsync with `sync`). Measured:
    // 7.6 → 11.2 operations per batch and 12% less node CPU per put (docs/performance.md).
    await new Promise<void>((resolve) => setImmediate(resolve));
    for (let batch = this.queue.shift(); batch !== undefined; batch = this.queue.shift()) {
      const failure = batch.probe ? await this.writeProbe() : await this.writeBatch(batch);
      // Later states of these keys (in later batches) stay pending; the others are now read from disk.
      for (const key of batch.writes.keys()) {
        if (this.pending.get(key)?.batch === batch) this.pending.delete(key);
      }
      batch.settle(failure);
    }
    this.writing = undefined;
  }

  /** Writes a data batch; returns the error to reject its calls with, if it was not written. */
  private async writeBatch(batch: Batch): Promise<StorageWriteError | undefined> {
    const operations = [...batch.writes.values()].map((write) =>
      write.value === null ? { type: "del" as const, key: write.dbKey } : { type: "put" as const, key: write.dbKey, value: write.value },
    );
    try {
      // Queued before the store stopped being writable: refused, never written after a failed write.
      this.assertWritable();
      const started = performance.now();
      await this.db.batch(operations, { sync: this.syncWrites });
      this.onBatchWritten?.(operations.length, (performance.now() - started) / 1000);
      this.counters.batches++;
      this.counters.operations += operations.length;
      this.counters.writes += batch.calls;
      return undefined;
    } catch (error) {
      this.counters.failedBatches++;
      if (error instanceof StorageWriteError) return error;
      const failure = new StorageWriteError(`writing a batch of ${operations.length} operations failed: ${reasonOf(error)}`, { cause: error });
      // Before the calls are rejected, so that a listener can mark the node not ready first.
      this.markFailing(failure);
      return failure;
    } finally {
      this.counters.pendingOperations -= operations.length;
    }
  }

  /** Puts and deletes the probe key with sync; tried even when the store is failing (it is reopen()'s proof). */
  private async writeProbe(): Promise<StorageWriteError | undefined> {
    try {
      await this.db.put(PROBE_KEY, new TextEncoder().encode(String(Date.now())), { sync: true });
      await this.db.del(PROBE_KEY, { sync: true });
      return undefined;
    } catch (error) {
      const failure = new StorageWriteError(`probe write to storage at ${this.location} failed: ${reasonOf(error)}`, { cause: error });
      this.markFailing(failure);
      return failure;
    }
  }
}

/**
 * Checks the format marker. A database with no keys at all gets the marker when `create` holds
 * (returns true: the store was created now); otherwise a missing marker is a StorageFormatError.
 */
async function checkFormat(db: Database, dir: string, create: boolean): Promise<boolean> {
  const marker = await db.get(FORMAT_KEY);
  if (marker !== undefined) {
    const found = new TextDecoder().decode(marker);
    if (found !== STORAGE_FORMAT) {
      throw new StorageFormatError(`${dir} holds storage format "${found}"; this version reads "${STORAGE_FORMAT}"`);
    }
    return false;
  }
  for await (const _ of db.keys({ limit: 1 })) {
    throw new StorageFormatError(`${dir} holds a LevelDB database that @dynamo-ts/storage did not write (no format marker)`);
  }
  if (!create) throw new StorageFormatError(`${dir} no longer holds a store (empty database, no format marker)`);
  await db.put(FORMAT_KEY, new TextEncoder().encode(STORAGE_FORMAT), { sync: true });
  return true;
}
