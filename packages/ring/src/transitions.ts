import { assertReplicaCount, type NodeId, type Ring } from "./ring.js";
import { hashKey } from "./hash.js";
import { assertToken, type TokenRange } from "./range.js";

/**
 * Ownership while the ring changes shape. The *settled* ring holds the members whose ranges are
 * theirs today (normal, leaving, dead but not removed): reads and the W/R counts use it. The
 * *pending* ring is the one the cluster will have once every join, decommission and removal in
 * progress completes. A key's *pending owners* are the nodes of its pending preference list that
 * are not in its settled one: they get every write as extra replicas (not counted towards W) so
 * that, once their transfer is done, they hold everything a settled replica held.
 */

/** Where a write of one key goes: `counted` (the settled preference list, W counted there) and `extra`. */
export interface WriteTargets {
  readonly counted: readonly NodeId[];
  /** Pending owners outside `counted`, in pending preference-list order. */
  readonly extra: readonly NodeId[];
}

/** The nodes of `key`'s pending preference list that are not in its settled one, in pending order. */
export function pendingOwners(settled: Ring, pending: Ring, key: string | Uint8Array, n: number): NodeId[] {
  return pendingOwnersForToken(settled, pending, hashKey(key), n);
}

export function pendingOwnersForToken(settled: Ring, pending: Ring, token: number, n: number): NodeId[] {
  assertToken(token);
  assertReplicaCount(n);
  const current = new Set(settled.preferenceListForToken(token, n));
  return pending.preferenceListForToken(token, n).filter((node) => !current.has(node));
}

export function writeTargets(settled: Ring, pending: Ring, key: string | Uint8Array, n: number): WriteTargets {
  const token = hashKey(key);
  return { counted: settled.preferenceListForToken(token, n), extra: pendingOwnersForToken(settled, pending, token, n) };
}

/**
 * One range a node gains when the ring goes from settled to pending: `target` is in the pending
 * replicas of every token of `range` and in none of its settled replicas; `sources` are the settled
 * replicas (any of them holds the range's data; the first is the settled primary).
 */
export interface RangeTransfer {
  readonly range: TokenRange;
  readonly target: NodeId;
  readonly sources: readonly NodeId[];
}

/**
 * Every range some node gains from settled to pending, as maximal runs of consecutive elementary
 * intervals (between the vnode tokens of both rings) with the same target and the same sources,
 * sorted by target, then end token. Empty when the rings place every token alike. A run covering the
 * whole ring is `{ start: t, end: t }`.
 */
export function rangeTransfers(settled: Ring, pending: Ring, n: number): RangeTransfer[] {
  assertReplicaCount(n);
  if (pending.nodes.length === 0) return [];
  // Both rings' preference lists are constant between consecutive boundary tokens of either ring.
  const boundaries = [...new Set([...settled.segments(), ...pending.segments()].map((segment) => segment.end))].sort((a, b) => a - b);
  const count = boundaries.length;
  interface Run {
    first: number;
    last: number;
    sources: readonly NodeId[];
    key: string;
  }
  const runsByTarget = new Map<NodeId, Run[]>();
  for (let i = 0; i < count; i++) {
    const end = boundaries[i]!;
    const sources = settled.preferenceListForToken(end, n);
    const key = sources.join("\n"); // node ids never contain a newline
    for (const target of pendingOwnersForToken(settled, pending, end, n)) {
      const runs = runsByTarget.get(target) ?? [];
      runsByTarget.set(target, runs);
      const previous = runs.at(-1);
      if (previous !== undefined && previous.last === i - 1 && previous.key === key) previous.last = i;
      else runs.push({ first: i, last: i, sources, key });
    }
  }
  const transfers: RangeTransfer[] = [];
  for (const target of [...runsByTarget.keys()].sort()) {
    const runs = runsByTarget.get(target)!;
    const first = runs[0]!;
    const last = runs.at(-1)!;
    if (runs.length > 1 && first.first === 0 && last.last === count - 1 && first.key === last.key) {
      // The last interval ends where interval 0 starts: one run across the wrap.
      first.first = last.first;
      runs.pop();
    }
    const ranges = runs.map((run) => {
      const whole = run.first === 0 && run.last === count - 1;
      const end = boundaries[run.last]!;
      const start = whole ? end : boundaries[(run.first + count - 1) % count]!;
      return { range: { start, end }, target, sources: run.sources };
    });
    transfers.push(...ranges.sort((a, b) => a.range.end - b.range.end));
  }
  return transfers;
}

/** The transfers `target` must receive (see `rangeTransfers`). */
export function transfersTo(settled: Ring, pending: Ring, target: NodeId, n: number): RangeTransfer[] {
  return rangeTransfers(settled, pending, n).filter((transfer) => transfer.target === target);
}

/**
 * A ring changing shape with several joins at once, which complete in any order. A joining node J
 * owns a token in some intermediate ring (settled plus any set of finished joins including J) iff
 * it owns it in `settled + J` (other joiners only push J further back). So J must copy, and receive
 * the writes of, everything it owns in `settled + J` as well as in `pending`; otherwise J, once
 * normal while another join is still in progress, would own ranges it never copied.
 */
export class RingTransition {
  /** `settled + J` for every node J in pending but not in settled. */
  private readonly soloJoins: ReadonlyMap<NodeId, Ring>;
  /** True when the two rings are the same shape (same nodes and vnodes: placement is a function of those). */
  private readonly settles: boolean;

  constructor(
    readonly settled: Ring,
    readonly pending: Ring,
  ) {
    this.soloJoins = new Map(pending.nodes.filter((node) => !settled.has(node)).map((node) => [node, settled.withNode(node)]));
    this.settles = settled.vnodes === pending.vnodes && settled.nodes.length === pending.nodes.length && settled.nodes.every((node) => pending.has(node));
  }

  /** Nodes that must get a write of `key` beyond its settled preference list: pending owners, and joiners owning it in any intermediate ring. */
  extraOwners(key: string | Uint8Array, n: number): NodeId[] {
    // No transition (the usual state): both rings place every token alike. Every write asks, so
    // this saves two preference lists and their garbage per write.
    if (this.settles) return [];
    const token = hashKey(key);
    const extra = pendingOwnersForToken(this.settled, this.pending, token, n);
    for (const [joiner, ring] of this.soloJoins) {
      if (!extra.includes(joiner) && ring.preferenceListForToken(token, n).includes(joiner)) extra.push(joiner);
    }
    return extra;
  }

  /** The ranges whose settled replicas include `source` that some node gains (what a departure of `source` moves). */
  transfersFrom(source: NodeId, n: number): RangeTransfer[] {
    return rangeTransfers(this.settled, this.pending, n).filter((transfer) => transfer.sources.includes(source));
  }

  /** What `target` must copy: its gains in `pending` and, for a joiner, in `settled + target` (ranges may overlap). */
  transfersTo(target: NodeId, n: number): RangeTransfer[] {
    const transfers = transfersTo(this.settled, this.pending, target, n);
    const solo = this.soloJoins.get(target);
    if (solo !== undefined) transfers.push(...transfersTo(this.settled, solo, target, n));
    return transfers;
  }
}
