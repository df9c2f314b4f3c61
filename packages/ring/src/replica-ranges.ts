import type { NodeId, Ring } from "./ring.js";
import type { TokenRange } from "./range.js";

/** A key range with one fixed set of replicas. */
export interface ReplicaRange {
  readonly range: TokenRange;
  /** Its N replicas, sorted. */
  readonly replicas: readonly NodeId[];
}

/**
 * The ranges `self` replicates, each a maximal run of consecutive ring segments with the same
 * replica set (so every co-replica computes the same boundaries), in order of their end token.
 * A range covering the whole ring is `{ start: t, end: t }` with t the highest vnode token.
 */
export function replicaRanges(ring: Ring, self: NodeId, n: number): ReplicaRange[] {
  if (!ring.has(self)) return [];
  const segments = ring.segments();
  const count = segments.length;
  const replicaSets = segments.map((segment) => [...ring.preferenceListForToken(segment.end, n)].sort());
  const keyOf = (nodes: readonly string[]) => nodes.join("\n"); // node ids never contain a newline
  const runs: { first: number; last: number; key: string }[] = [];
  for (let s = 0; s < count; s++) {
    const replicas = replicaSets[s]!;
    if (!replicas.includes(self)) continue;
    const key = keyOf(replicas);
    const previous = runs.at(-1);
    if (previous !== undefined && previous.last === s - 1 && previous.key === key) previous.last = s;
    else runs.push({ first: s, last: s, key });
  }
  const first = runs[0];
  const last = runs.at(-1);
  if (first !== undefined && last !== undefined && first.first === 0 && last.last === count - 1) {
    if (runs.length === 1) {
      const end = segments[count - 1]!.end;
      return [{ range: { start: end, end }, replicas: replicaSets[0]! }];
    }
    if (first.key === last.key) {
      // The last segment ends where segment 0 starts: one range across the wrap.
      first.first = last.first;
      runs.pop();
    }
  }
  return runs
    .map((run) => ({
      range: { start: segments[run.first]!.start, end: segments[run.last]!.end },
      replicas: replicaSets[run.last]!,
    }))
    .sort((a, b) => a.range.end - b.range.end);
}
