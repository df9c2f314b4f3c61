// A replica that lost its data (a wiped data directory, a new disk) must not answer reads as
// if it held the keys: a read at R=1 through it would return NotFound for keys the cluster
// acknowledged. Until it has rebuilt a token range from a co-replica, its reads of keys in that
// range fail (the coordinator counts it as a replica that did not answer) while it keeps taking
// writes like any replica. Anti-entropy does the rebuilding; this tracks which tokens are done.
//
// A range counts as rebuilt when an exchange of it completed (in sync, or repaired) with a
// co-replica that is not rebuilding that range itself, or when every co-replica answered that it
// is rebuilding too: then no replica holds anything to copy (a new cluster, or one that lost all
// copies), and waiting would only keep the range unreadable.
import { rangeIntervals, type TokenRange } from "@dynamo-ts/ring";

/** A set of ring tokens as sorted, disjoint, non-adjacent inclusive intervals. */
export class TokenSet {
  private intervals: Array<[number, number]> = [];

  /** Adds the tokens of `range` (start < t <= end, wrapping; start === end is the whole ring). */
  add(range: TokenRange): void {
    for (const [low, high] of rangeIntervals(range)) this.addInterval(low, high);
  }

  has(token: number): boolean {
    for (const [low, high] of this.intervals) {
      if (token < low) return false;
      if (token <= high) return true;
    }
    return false;
  }

  /** Whether every token of `range` is in the set. */
  covers(range: TokenRange): boolean {
    return rangeIntervals(range).every(([low, high]) => this.intervals.some(([a, b]) => a <= low && high <= b));
  }

  private addInterval(low: number, high: number): void {
    const merged: Array<[number, number]> = [];
    let placed = false;
    for (const [a, b] of this.intervals) {
      if (b + 1 < low) merged.push([a, b]);
      else if (high + 1 < a) {
        if (!placed) merged.push([low, high]);
        placed = true;
        merged.push([a, b]);
      } else {
        low = Math.min(low, a);
        high = Math.max(high, b);
      }
    }
    if (!placed) merged.push([low, high]);
    this.intervals = merged;
  }
}

export type ExchangeOutcomeKind = "in-sync" | "repaired" | "refused" | "failed";

export class ReplicaRebuild {
  private readonly rebuilt = new TokenSet();
  /** Per range ("start:end"): co-replicas that said they are rebuilding it too. */
  private readonly alsoRebuilding = new Map<string, Set<string>>();
  private done: boolean;

  constructor(
    /** True when this node starts without its data. */
    rebuilding: boolean,
  ) {
    this.done = !rebuilding;
  }

  get active(): boolean {
    return !this.done;
  }

  /** Whether reads of the key at `token` may be answered from the local store. */
  serves(token: number): boolean {
    return this.done || this.rebuilt.has(token);
  }

  /** Whether `range` still waits to be rebuilt (peers' exchanges report it). */
  pending(range: TokenRange): boolean {
    return !this.done && !this.rebuilt.covers(range);
  }

  /**
   * An exchange of `range` (whose co-replicas are `peers`) with `peer` ended. `peerRebuilding`
   * is what the peer said when it opened the range.
   */
  recordExchange(range: TokenRange, peers: readonly string[], peer: string, outcome: ExchangeOutcomeKind, peerRebuilding: boolean): void {
    if (this.done || (outcome !== "in-sync" && outcome !== "repaired")) return;
    if (!peerRebuilding) {
      this.rebuilt.add(range);
      return;
    }
    const key = `${range.start}:${range.end}`;
    const rebuilding = this.alsoRebuilding.get(key) ?? new Set<string>();
    rebuilding.add(peer);
    this.alsoRebuilding.set(key, rebuilding);
    if (peers.every((p) => rebuilding.has(p))) this.rebuilt.add(range);
  }

  /**
   * Ends the rebuild once every range this node replicates is rebuilt (a range no other node
   * replicates has nothing to rebuild from: it counts as rebuilt); true when it just ended.
   */
  finishIfComplete(ranges: ReadonlyArray<{ readonly range: TokenRange; readonly peers: readonly string[] }>): boolean {
    if (this.done || this.remaining(ranges) > 0) return false;
    this.done = true;
    this.alsoRebuilding.clear();
    return true;
  }

  /** How many of `ranges` are still to rebuild. */
  remaining(ranges: ReadonlyArray<{ readonly range: TokenRange; readonly peers: readonly string[] }>): number {
    if (this.done) return 0;
    return ranges.filter(({ range, peers }) => peers.length > 0 && !this.rebuilt.covers(range)).length;
  }
}
