import { type QueueEntry, TargetQueue } from "./target-queue.js";

/**
 * The in-memory index of every durable hint: one TargetQueue per target with hints, plus store-wide
 * totals. It is changed only after the batch that made a change durable was written (or at open).
 */
export class HintIndex {
  private readonly queues = new Map<string, TargetQueue>();
  private totalCount = 0;
  private totalBytes = 0;

  get count(): number {
    return this.totalCount;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  queue(target: string): TargetQueue | undefined {
    return this.queues.get(target);
  }

  entries(): IterableIterator<[string, TargetQueue]> {
    return this.queues.entries();
  }

  /** Throws RangeError if the entry breaks a queue's ordering or one-hint-per-key rule. */
  add(target: string, seq: number, createdAt: number, key: string, keyBytes: number, recordBytes: number): void {
    let queue = this.queues.get(target);
    if (queue === undefined) {
      queue = new TargetQueue();
      this.queues.set(target, queue);
    }
    queue.append(seq, createdAt, key, keyBytes, recordBytes);
    this.totalCount++;
    this.totalBytes += keyBytes + recordBytes;
  }

  remove(target: string, seq: number): QueueEntry | undefined {
    const queue = this.queues.get(target);
    const removed = queue?.remove(seq);
    if (queue === undefined || removed === undefined) {
      return undefined;
    }
    this.totalCount--;
    this.totalBytes -= removed.bytes;
    if (queue.count === 0) {
      this.queues.delete(target);
    }
    return removed;
  }
}
