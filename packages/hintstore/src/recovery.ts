// Opening the LevelDB and rebuilding the in-memory index from it, for HintStore.open() and reopen().
import { ClassicLevel } from "classic-level";
import type { DbOp } from "./batch-plan.js";
import {
  ALL_HINTS_RANGE,
  decodeHintHeader,
  decodeHintKey,
  decodeHintValue,
  decodeSeqValue,
  encodeHintKey,
  encodeHintValue,
  encodeSeqValue,
  FORMAT_KEY,
  FORMAT_MARKER,
  MAX_SEQ,
  NEXT_SEQ_KEY,
} from "./codec.js";
import { HintStoreError, HintStoreFormatError, HintStoreOpenError } from "./errors.js";
import { HintIndex } from "./hint-index.js";

export type Db = ClassicLevel<Buffer, Buffer>;
export type MergeRecords = (older: Uint8Array, newer: Uint8Array) => Uint8Array;

export interface RecoveryOptions {
  readonly merge: MergeRecords;
  readonly sync: boolean;
  /** Validated clock: the createdAt of a hint merged at open. */
  readonly readClock: () => number;
  /** Lowest sequence number to hand out next (a reopened store keeps the ids it already handed out). */
  readonly nextSeqFloor: number;
  /** Lowest createdAt to hand out next (createdAt never decreases in enqueue order). */
  readonly createdAtFloor: number;
}

export interface RecoveredState {
  readonly index: HintIndex;
  readonly nextSeq: number;
  readonly lastCreatedAt: number;
  /** (target, key) pairs that held several hints (written by an older version) and were merged into one. */
  readonly mergedKeys: number;
}

/** Opens (creating if missing) the LevelDB in `dir`, checks its format and rebuilds the index. */
export async function openDatabase(dir: string, options: RecoveryOptions): Promise<{ db: Db; recovered: RecoveredState }> {
  const db: Db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: "buffer", valueEncoding: "buffer" });
  try {
    await db.open({ createIfMissing: true });
  } catch (error) {
    throw new HintStoreOpenError(`cannot open hint store at ${dir}: ${messageOf(error)}`, { cause: error });
  }
  try {
    await checkFormat(db, dir);
    return { db, recovered: await recover(db, dir, options) };
  } catch (error) {
    await db.close().catch(() => undefined);
    throw error;
  }
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

async function recover(db: Db, dir: string, options: RecoveryOptions): Promise<RecoveredState> {
  const index = new HintIndex();
  /** target -> key -> seqs (ascending) of keys stored more than once: the index holds the first. */
  const duplicates = new Map<string, Map<string, number[]>>();
  let maxSeq = 0;
  let lastCreatedAt = options.createdAtFloor;
  for await (const [dbKey, value] of db.iterator(ALL_HINTS_RANGE)) {
    const { target, seq } = decodeHintKey(dbKey);
    const { key, createdAt, recordBytes } = decodeHintHeader(value);
    maxSeq = Math.max(maxSeq, seq);
    lastCreatedAt = Math.max(lastCreatedAt, createdAt);
    const first = index.queue(target)?.entryForKey(key);
    if (first !== undefined) {
      let byKey = duplicates.get(target);
      if (byKey === undefined) {
        byKey = new Map();
        duplicates.set(target, byKey);
      }
      const seqs = byKey.get(key) ?? [first.seq];
      seqs.push(seq);
      byKey.set(key, seqs);
      continue;
    }
    try {
      index.add(target, seq, createdAt, key, Buffer.byteLength(key, "utf8"), recordBytes);
    } catch (error) {
      throw new HintStoreFormatError(`hint store at ${dir} is inconsistent for target "${target}": ${messageOf(error)}`);
    }
  }
  const storedNextSeq = await db.get(NEXT_SEQ_KEY);
  let nextSeq = Math.max(storedNextSeq === undefined ? 1 : decodeSeqValue(storedNextSeq), maxSeq + 1, options.nextSeqFloor);
  let mergedKeys = 0;
  for (const [target, byKey] of duplicates) {
    for (const [key, seqs] of byKey) {
      if (nextSeq > MAX_SEQ) {
        throw new HintStoreError(`hint sequence numbers are exhausted (${MAX_SEQ})`);
      }
      lastCreatedAt = Math.max(lastCreatedAt, options.readClock());
      await mergeDuplicates(db, index, options, { target, key, seqs, seq: nextSeq++, createdAt: lastCreatedAt });
      mergedKeys++;
    }
  }
  return { index, nextSeq, lastCreatedAt, mergedKeys };
}

interface DuplicateGroup {
  readonly target: string;
  readonly key: string;
  /** The stored hints of (target, key), oldest first. */
  readonly seqs: readonly number[];
  /** Sequence number and createdAt of the hint that replaces them. */
  readonly seq: number;
  readonly createdAt: number;
}

/**
 * A store written before the one-hint-per-key rule may hold several hints for one (target, key). They are
 * folded oldest first into one hint that goes to the back of the queue, in one batch per key, so a crash
 * part-way leaves every key either as it was or merged (the next open merges the rest). Only two records
 * are in memory at a time.
 */
async function mergeDuplicates(db: Db, index: HintIndex, options: RecoveryOptions, group: DuplicateGroup): Promise<void> {
  const { target, key, seqs, seq, createdAt } = group;
  let merged: Uint8Array | undefined;
  for (const oldSeq of seqs) {
    const value = await db.get(encodeHintKey(target, oldSeq));
    if (value === undefined) {
      throw new HintStoreFormatError(`hint ${oldSeq} of target "${target}" vanished while the store was opened`);
    }
    const { record } = decodeHintValue(value);
    if (merged === undefined) {
      merged = record;
      continue;
    }
    try {
      merged = options.merge(merged, record);
    } catch (error) {
      throw new HintStoreError(`cannot merge the ${seqs.length} hints stored for key ${JSON.stringify(key)} of target "${target}": ${messageOf(error)}`, {
        cause: error,
      });
    }
    if (!(merged instanceof Uint8Array)) {
      throw new HintStoreError(`the merge option returned ${typeof merged}, not a Uint8Array`);
    }
  }
  const record = merged!;
  const ops: DbOp[] = seqs.map((oldSeq) => ({ type: "del", key: encodeHintKey(target, oldSeq) }));
  ops.push({ type: "put", key: encodeHintKey(target, seq), value: encodeHintValue(key, createdAt, record) });
  ops.push({ type: "put", key: NEXT_SEQ_KEY, value: encodeSeqValue(seq + 1) });
  await db.batch(ops, { sync: options.sync });
  index.remove(target, seqs[0]!);
  index.add(target, seq, createdAt, key, Buffer.byteLength(key, "utf8"), record.length);
}

/** The message with its causes ("Database failed to open: IO error: ... Read-only file system"). */
export function messageOf(error: unknown): string {
  const parts: string[] = [];
  for (let current = error, depth = 0; current !== undefined && depth < 4; depth++) {
    parts.push(current instanceof Error ? current.message : String(current));
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join(": ");
}
