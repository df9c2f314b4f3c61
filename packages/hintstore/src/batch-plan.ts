import { encodeHintKey, encodeSeqValue, NEXT_SEQ_KEY } from "./codec.js";
import type { HintIndex } from "./hint-index.js";

export type DbOp = { type: "put"; key: Buffer; value: Buffer } | { type: "del"; key: Buffer };

/** A hint written by this batch. */
export interface PlannedPut {
  readonly target: string;
  readonly seq: number;
  readonly key: string;
  readonly keyBytes: number;
  readonly createdAt: number;
  /** The encoded hint value that is written. */
  readonly value: Buffer;
  /** The record inside `value` (a view): where a later merge into the same key in this batch starts. */
  readonly record: Uint8Array;
}

/** The hint a (target, key) holds at the current point of a batch. */
export interface CurrentHint {
  readonly seq: number;
  /** Key plus record bytes. */
  readonly bytes: number;
  /** Set when the hint was written earlier in this same batch (its record is then in memory). */
  readonly planned: PlannedPut | undefined;
}

type Effect = { readonly kind: "add"; readonly put: PlannedPut } | { readonly kind: "remove"; readonly target: string; readonly seq: number };

/**
 * One group-commit batch being planned: the LevelDB operations plus an overlay over the index that
 * answers "what is stored now" as if the requests planned so far had been applied. Requests are planned
 * one after the other in call order, so every request sees the effect of every earlier one (an enqueue
 * merges into the hint an earlier enqueue of the same batch wrote, an ack finds a hint enqueued just
 * before it, a cap counts what earlier enqueues added) without touching the index, which changes only
 * once the batch is on disk (apply()).
 */
export class BatchPlan {
  private readonly ops: DbOp[] = [];
  private readonly effects: Effect[] = [];
  /** Live hints written by this batch: target -> seq -> put, and target -> key -> seq. */
  private readonly added = new Map<string, Map<number, PlannedPut>>();
  private readonly addedByKey = new Map<string, Map<string, number>>();
  /** Durable hints deleted by this batch: target -> seqs. */
  private readonly removedDurable = new Map<string, Set<number>>();
  private countDelta = 0;
  private bytesDelta = 0;
  private readonly targetBytesDelta = new Map<string, number>();
  private maxPutSeq = -1;
  private readonly index: HintIndex;

  constructor(index: HintIndex) {
    this.index = index;
  }

  count(): number {
    return this.index.count + this.countDelta;
  }

  bytes(): number {
    return this.index.bytes + this.bytesDelta;
  }

  targetBytes(target: string): number {
    return (this.index.queue(target)?.bytes ?? 0) + (this.targetBytesDelta.get(target) ?? 0);
  }

  current(target: string, key: string): CurrentHint | undefined {
    const addedSeq = this.addedByKey.get(target)?.get(key);
    if (addedSeq !== undefined) {
      const planned = this.added.get(target)!.get(addedSeq)!;
      return { seq: addedSeq, bytes: planned.keyBytes + planned.record.length, planned };
    }
    const durable = this.index.queue(target)?.entryForKey(key);
    if (durable === undefined || this.removedDurable.get(target)?.has(durable.seq)) {
      return undefined;
    }
    return { seq: durable.seq, bytes: durable.bytes, planned: undefined };
  }

  put(put: PlannedPut): void {
    if (this.current(put.target, put.key) !== undefined) {
      throw new RangeError(`hint ${put.seq} planned for a key that still has a hint`);
    }
    this.ops.push({ type: "put", key: encodeHintKey(put.target, put.seq), value: put.value });
    this.effects.push({ kind: "add", put });
    getOrCreate(this.added, put.target, () => new Map<number, PlannedPut>()).set(put.seq, put);
    getOrCreate(this.addedByKey, put.target, () => new Map<string, number>()).set(put.key, put.seq);
    this.adjust(put.target, 1, put.keyBytes + put.record.length);
    this.maxPutSeq = Math.max(this.maxPutSeq, put.seq);
  }

  /** Deletes a hint if it is stored at this point of the batch; returns whether it was. */
  remove(target: string, seq: number): boolean {
    const planned = this.added.get(target)?.get(seq);
    let bytes: number;
    if (planned !== undefined) {
      this.added.get(target)!.delete(seq);
      this.addedByKey.get(target)!.delete(planned.key);
      bytes = planned.keyBytes + planned.record.length;
    } else {
      const durable = this.index.queue(target)?.get(seq);
      const removed = getOrCreate(this.removedDurable, target, () => new Set<number>());
      if (durable === undefined || removed.has(seq)) {
        return false;
      }
      removed.add(seq);
      bytes = durable.bytes;
    }
    this.ops.push({ type: "del", key: encodeHintKey(target, seq) });
    this.effects.push({ kind: "remove", target, seq });
    this.adjust(target, -1, -bytes);
    return true;
  }

  /** Sequence numbers of every hint `target` holds at this point of the batch, oldest first. */
  targetSeqs(target: string): number[] {
    const removed = this.removedDurable.get(target);
    const durable = (this.index.queue(target)?.liveSeqs() ?? []).filter((seq) => !removed?.has(seq));
    // Hints written by this batch have later sequence numbers than every durable one.
    return [...durable, ...(this.added.get(target)?.keys() ?? [])];
  }

  /** Every hint created strictly before `cutoff` at this point of the batch, as [target, seq]. */
  createdBefore(cutoff: number): [string, number][] {
    const result: [string, number][] = [];
    for (const [target, queue] of this.index.entries()) {
      const removed = this.removedDurable.get(target);
      for (const seq of queue.seqsCreatedBefore(cutoff)) {
        if (!removed?.has(seq)) {
          result.push([target, seq]);
        }
      }
    }
    for (const [target, puts] of this.added) {
      for (const put of puts.values()) {
        if (put.createdAt < cutoff) {
          result.push([target, put.seq]);
        }
      }
    }
    return result;
  }

  /** The LevelDB batch, with the sequence high-water mark when it writes hints. */
  dbOps(): DbOp[] {
    if (this.maxPutSeq < 0) {
      return this.ops;
    }
    // Persisted with the hints so a sequence number (and thus an id) is never handed out twice, even
    // after every hint was acknowledged and the store reopened.
    return [...this.ops, { type: "put", key: NEXT_SEQ_KEY, value: encodeSeqValue(this.maxPutSeq + 1) }];
  }

  /** Replays the batch's changes onto the index, in order; call once the batch is on disk. */
  apply(): void {
    for (const effect of this.effects) {
      if (effect.kind === "add") {
        const { target, seq, createdAt, key, keyBytes, record } = effect.put;
        this.index.add(target, seq, createdAt, key, keyBytes, record.length);
      } else {
        this.index.remove(effect.target, effect.seq);
      }
    }
  }

  private adjust(target: string, count: number, bytes: number): void {
    this.countDelta += count;
    this.bytesDelta += bytes;
    this.targetBytesDelta.set(target, (this.targetBytesDelta.get(target) ?? 0) + bytes);
  }
}

function getOrCreate<K, V>(map: Map<K, V>, key: K, create: () => V): V {
  let value = map.get(key);
  if (value === undefined) {
    value = create();
    map.set(key, value);
  }
  return value;
}
