import type { MemberUpdate } from "./types.js";

interface Entry {
  readonly update: MemberUpdate;
  transmits: number;
  /** Insertion counter: higher is fresher. */
  readonly order: number;
}

/**
 * Updates waiting to be piggybacked. One entry per member (a newer fact about a member replaces
 * the older one). Each message takes the least-transmitted entries first, freshest first among
 * equals, and an entry is dropped once it has been sent `limit` times.
 */
export class BroadcastQueue {
  private readonly entries = new Map<string, Entry>();
  private counter = 0;

  get size(): number {
    return this.entries.size;
  }

  enqueue(update: MemberUpdate): void {
    this.entries.set(update.id, { update, transmits: 0, order: ++this.counter });
  }

  /** Takes up to `max` updates (skipping ids in `skip`), counting one transmission for each. */
  take(max: number, limit: number, skip: ReadonlySet<string>): MemberUpdate[] {
    if (max <= 0 || this.entries.size === 0) return [];
    const candidates: Entry[] = [];
    for (const entry of this.entries.values()) {
      if (!skip.has(entry.update.id)) candidates.push(entry);
    }
    candidates.sort((a, b) => a.transmits - b.transmits || b.order - a.order);
    const chosen = candidates.slice(0, max);
    for (const entry of chosen) {
      entry.transmits++;
      if (entry.transmits >= limit) this.entries.delete(entry.update.id);
    }
    return chosen.map((entry) => entry.update);
  }
}
