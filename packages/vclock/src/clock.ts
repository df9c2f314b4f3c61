export type NodeId = string;

/** Per-node event counters. Every counter is >= 1; a node that is absent counts as 0. */
export type VersionVector = ReadonlyMap<NodeId, number>;

/** One event: the `counter`-th write coordinated by `node`. */
export interface Dot {
  readonly node: NodeId;
  readonly counter: number;
}

export type ClockOrder = "equal" | "before" | "after" | "concurrent";

const EMPTY_CLOCK: VersionVector = new Map();

export function emptyClock(): VersionVector {
  return EMPTY_CLOCK;
}

/** True when the clock has seen the event `dot`. */
export function covers(clock: VersionVector, dot: Dot): boolean {
  return (clock.get(dot.node) ?? 0) >= dot.counter;
}

/** Pointwise maximum. Returns one of the inputs when it already dominates the other (clocks are immutable). */
export function mergeClocks(a: VersionVector, b: VersionVector): VersionVector {
  if (b.size === 0) return a;
  if (a.size === 0) return b;
  let merged: Map<NodeId, number> | undefined;
  for (const [node, counter] of b) {
    if ((a.get(node) ?? 0) < counter) {
      merged ??= new Map(a);
      merged.set(node, counter);
    }
  }
  return merged ?? a;
}

/** How `a` relates to `b` in causal (happened-before) order. */
export function compare(a: VersionVector, b: VersionVector): ClockOrder {
  let aAhead = false;
  let bAhead = false;
  for (const [node, counter] of a) {
    const other = b.get(node) ?? 0;
    if (counter > other) aAhead = true;
    else if (counter < other) bAhead = true;
  }
  for (const [node, counter] of b) {
    if (!a.has(node) && counter > 0) bAhead = true;
  }
  if (aAhead) return bAhead ? "concurrent" : "after";
  return bAhead ? "before" : "equal";
}

export function equalClocks(a: VersionVector, b: VersionVector): boolean {
  if (a === b) return true;
  if (a.size !== b.size) return false;
  for (const [node, counter] of a) {
    if (b.get(node) !== counter) return false;
  }
  return true;
}

/** Canonical order of node ids (UTF-16 code units, as `<` on strings), used by sibling order and the encoding. */
export function compareNodeIds(a: NodeId, b: NodeId): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
