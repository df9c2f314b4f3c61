/** One stored hint as the in-memory index knows it (no record: records stay on disk). */
export interface QueueEntry {
  readonly seq: number;
  readonly createdAt: number;
  readonly key: string;
  /** UTF-8 key bytes plus record bytes: what the byte caps count. */
  readonly bytes: number;
  /** Record bytes alone: what list()'s byte budget counts. */
  readonly recordBytes: number;
}

/**
 * In-memory index of the hints stored for one target: their sequence numbers, creation times, keys and
 * sizes, in enqueue order, plus key -> sequence (a target holds at most one hint per key). It is what
 * makes `targets()` exact and synchronous, what the byte caps are checked against, and what `expire()`,
 * `dropTarget()` and `list()` read to decide which keys to touch without scanning the database.
 *
 * The hint store hands out creation times that never decrease with the sequence number, so the
 * oldest hint is always the first live entry and the newest the last one. Removal (acks may come in
 * any order) leaves a tombstone that is trimmed from the ends at once and compacted away in bulk,
 * keeping every operation O(log n) amortized.
 */
export class TargetQueue {
  private seqs: number[] = [];
  /** NaN marks a removed entry. */
  private createdAts: number[] = [];
  private keys: string[] = [];
  private keyBytes: number[] = [];
  private recordBytes: number[] = [];
  private readonly seqByKey = new Map<string, number>();
  private head = 0;
  private live = 0;
  private liveBytes = 0;

  get count(): number {
    return this.live;
  }

  /** Key plus record bytes of the live entries. */
  get bytes(): number {
    return this.liveBytes;
  }

  get oldestCreatedAt(): number {
    return this.live === 0 ? Number.NaN : this.at(this.head);
  }

  get newestCreatedAt(): number {
    return this.live === 0 ? Number.NaN : this.at(this.createdAts.length - 1);
  }

  append(seq: number, createdAt: number, key: string, keyBytes: number, recordBytes: number): void {
    const lastSeq = this.seqs.length > 0 ? this.seqs[this.seqs.length - 1]! : -1;
    if (seq <= lastSeq) {
      throw new RangeError(`sequence ${seq} appended after ${lastSeq}`);
    }
    if (this.live > 0 && createdAt < this.newestCreatedAt) {
      throw new RangeError(`createdAt ${createdAt} appended after ${this.newestCreatedAt}`);
    }
    const existing = this.seqByKey.get(key);
    if (existing !== undefined) {
      throw new RangeError(`key ${JSON.stringify(key)} already has hint ${existing}`);
    }
    this.seqs.push(seq);
    this.createdAts.push(createdAt);
    this.keys.push(key);
    this.keyBytes.push(keyBytes);
    this.recordBytes.push(recordBytes);
    this.seqByKey.set(key, seq);
    this.live++;
    this.liveBytes += keyBytes + recordBytes;
  }

  has(seq: number): boolean {
    return this.indexOf(seq) >= 0;
  }

  /** The live hint stored for `key`, if any. */
  entryForKey(key: string): QueueEntry | undefined {
    const seq = this.seqByKey.get(key);
    return seq === undefined ? undefined : this.get(seq);
  }

  get(seq: number): QueueEntry | undefined {
    const index = this.indexOf(seq);
    return index < 0 ? undefined : this.entryAt(index);
  }

  /** Removes a live entry and returns it, or undefined if there was none. */
  remove(seq: number): QueueEntry | undefined {
    const index = this.indexOf(seq);
    if (index < 0) {
      return undefined;
    }
    const entry = this.entryAt(index);
    this.createdAts[index] = Number.NaN;
    this.keys[index] = ""; // lets a removed key be collected before compaction
    this.seqByKey.delete(entry.key);
    this.live--;
    this.liveBytes -= entry.bytes;
    this.trimEnds();
    this.compactIfSparse();
    return entry;
  }

  /** Sequence numbers of the live entries created strictly before `cutoff` (a prefix, by the ordering rule). */
  seqsCreatedBefore(cutoff: number): number[] {
    const result: number[] = [];
    for (let i = this.head; i < this.seqs.length; i++) {
      const createdAt = this.at(i);
      if (Number.isNaN(createdAt)) {
        continue;
      }
      if (createdAt >= cutoff) {
        break;
      }
      result.push(this.seqs[i]!);
    }
    return result;
  }

  liveSeqs(): number[] {
    return [...this.entries()].map((entry) => entry.seq);
  }

  /** Live entries, oldest first. */
  *entries(): Generator<QueueEntry> {
    for (let i = this.head; i < this.seqs.length; i++) {
      if (!Number.isNaN(this.at(i))) {
        yield this.entryAt(i);
      }
    }
  }

  private entryAt(index: number): QueueEntry {
    const keyBytes = this.keyBytes[index]!;
    const recordBytes = this.recordBytes[index]!;
    return {
      seq: this.seqs[index]!,
      createdAt: this.at(index),
      key: this.keys[index]!,
      bytes: keyBytes + recordBytes,
      recordBytes,
    };
  }

  private at(index: number): number {
    return this.createdAts[index]!;
  }

  /** Index of a live entry, or -1. */
  private indexOf(seq: number): number {
    let low = this.head;
    let high = this.seqs.length - 1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      const midSeq = this.seqs[mid]!;
      if (midSeq === seq) {
        return Number.isNaN(this.at(mid)) ? -1 : mid;
      }
      if (midSeq < seq) {
        low = mid + 1;
      } else {
        high = mid - 1;
      }
    }
    return -1;
  }

  private trimEnds(): void {
    while (this.head < this.seqs.length && Number.isNaN(this.at(this.head))) {
      this.head++;
    }
    while (this.seqs.length > this.head && Number.isNaN(this.at(this.seqs.length - 1))) {
      this.seqs.pop();
      this.createdAts.pop();
      this.keys.pop();
      this.keyBytes.pop();
      this.recordBytes.pop();
    }
    if (this.head === this.seqs.length) {
      this.seqs = [];
      this.createdAts = [];
      this.keys = [];
      this.keyBytes = [];
      this.recordBytes = [];
      this.head = 0;
    }
  }

  private compactIfSparse(): void {
    const slots = this.seqs.length;
    if (slots < 1024 || this.live * 2 > slots) {
      return;
    }
    const live = [...this.entries()];
    this.seqs = live.map((entry) => entry.seq);
    this.createdAts = live.map((entry) => entry.createdAt);
    this.keys = live.map((entry) => entry.key);
    this.keyBytes = live.map((entry) => entry.bytes - entry.recordBytes);
    this.recordBytes = live.map((entry) => entry.recordBytes);
    this.head = 0;
  }
}
