// A keyed table for entries that come and go at a high rate and may hold a lot (a request's
// state), kept for the life of the process: storage's writes not yet flushed and the replica
// stream's ops in flight use it instead of a Map.
//
// Why not a Map: V8 grows, shrinks and compacts a Map's hash table by allocating a new one, and
// the old table keeps its entries and a pointer to the new one (for iterators that were on it).
// Once one such old table sits in the old generation (promoted while it was current, or moved
// there by a full GC), V8's scavenges treat its pointer as a root: every later table survives
// with the entries it held, and is promoted in turn, so every entry that ever went through the
// table is promoted with all it references (4 KB per put on a busy coordinator, 15 ms
// scavenges: docs/performance.md, eighth pass). A null-prototype object in dictionary mode
// replaces its table without such a link.

/** String- or integer-keyed table; values may not be undefined. */
export class ChurnTable<V> {
  private entries: Record<string, V | undefined> = Object.create(null) as Record<string, V | undefined>;
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(key: string | number): V | undefined {
    // An empty table answers without the lookup: a string key not seen before is looked up in
    // V8's string table first, and most lookups (a read of a key nobody is writing) miss.
    return this.count === 0 ? undefined : this.entries[key];
  }

  set(key: string | number, value: V): void {
    if (value === undefined) throw new TypeError("ChurnTable values may not be undefined");
    if (this.entries[key] === undefined) this.count++;
    this.entries[key] = value;
  }

  /** True when the key was there. */
  delete(key: string | number): boolean {
    if (this.entries[key] === undefined) return false;
    delete this.entries[key];
    this.count--;
    return true;
  }

  values(): V[] {
    return Object.values(this.entries) as V[];
  }

  clear(): void {
    this.entries = Object.create(null) as Record<string, V | undefined>;
    this.count = 0;
  }
}
