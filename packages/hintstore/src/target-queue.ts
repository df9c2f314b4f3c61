/**
 * In-memory index of the hints stored for one target: their sequence numbers and creation times, in
 * enqueue order. It is what makes `targets()` exact and synchronous, and what `expire()` and
 * `dropTarget()` read to decide which keys to delete without scanning the database.
 *
 * The hint store hands out creation times that never decrease with the sequence number, so the
 * oldest hint is always the first live entry and the newest the last one. Removal (acks may come in
 * any order) leaves a tombstone that is trimmed from the ends at once and compacted away in bulk,
 * keeping every operation O(log n) amortized at 16 bytes per live hint.
 */
export class TargetQueue {
  private seqs: number[] = [];
  /** NaN marks a removed entry. */
  private createdAts: number[] = [];
  private head = 0;
  private live = 0;

  get count(): number {
    return this.live;
  }

  get oldestCreatedAt(): number {
    return this.live === 0 ? Number.NaN : this.at(this.head);
  }

  get newestCreatedAt(): number {
    return this.live === 0 ? Number.NaN : this.at(this.createdAts.length - 1);
  }

  append(seq: number, createdAt: number): void {
    const lastSeq = this.seqs.length > 0 ? this.seqs[this.seqs.length - 1]! : -1;
    if (seq <= lastSeq) {
      throw new RangeError(`sequence ${seq} appended after ${lastSeq}`);
    }
    if (this.live > 0 && createdAt < this.newestCreatedAt) {
      throw new RangeError(`createdAt ${createdAt} appended after ${this.newestCreatedAt}`);
    }
    this.seqs.push(seq);
    this.createdAts.push(createdAt);
    this.live++;
  }

  has(seq: number): boolean {
    return this.indexOf(seq) >= 0;
  }

  /** Returns whether the entry was present. */
  remove(seq: number): boolean {
    const index = this.indexOf(seq);
    if (index < 0) {
      return false;
    }
    this.createdAts[index] = Number.NaN;
    this.live--;
    this.trimEnds();
    this.compactIfSparse();
    return true;
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
    const result: number[] = [];
    for (let i = this.head; i < this.seqs.length; i++) {
      if (!Number.isNaN(this.at(i))) {
        result.push(this.seqs[i]!);
      }
    }
    return result;
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
    }
    if (this.head === this.seqs.length) {
      this.seqs = [];
      this.createdAts = [];
      this.head = 0;
    }
  }

  private compactIfSparse(): void {
    const slots = this.seqs.length;
    if (slots < 1024 || this.live * 2 > slots) {
      return;
    }
    const seqs: number[] = [];
    const createdAts: number[] = [];
    for (let i = this.head; i < slots; i++) {
      const createdAt = this.at(i);
      if (!Number.isNaN(createdAt)) {
        seqs.push(this.seqs[i]!);
        createdAts.push(createdAt);
      }
    }
    this.seqs = seqs;
    this.createdAts = createdAts;
    this.head = 0;
  }
}
