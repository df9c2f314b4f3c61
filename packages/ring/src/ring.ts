import { RingError } from "./errors.js";
import { hashKey, vnodeToken } from "./hash.js";
import { TOKEN_SPACE, assertRange, assertToken, rangeSize, type TokenRange } from "./range.js";

export type NodeId = string;

/** One replica of a key. */
export interface Placement {
  readonly node: NodeId;
  /** Set when this node is a sloppy-quorum fallback standing in for a preference-list node. */
  readonly standsInFor?: NodeId;
}

export interface RingOptions {
  /** Virtual nodes per physical node, an integer in 1..4096. Default 256. */
  readonly vnodes?: number;
}

export const DEFAULT_VNODES = 256;
export const MAX_VNODES = 4096;

/**
 * An immutable consistent-hashing ring with virtual nodes.
 *
 * Node `i`'s vnode `j` sits at `vnodeToken(node, j)`. A key belongs to the first vnode whose token
 * is >= the key's token (wrapping past 2^32 to the lowest token). Vnodes with equal tokens are
 * ordered by node id, then vnode index, so placement is a pure function of the node set.
 */
export class Ring {
  /** Sorted, distinct node ids. */
  readonly nodes: readonly NodeId[];
  readonly vnodes: number;

  readonly #indexOfNode: ReadonlyMap<NodeId, number>;
  /** Every vnode's token, ascending (ties broken by node index, then vnode index). */
  readonly #tokens: Uint32Array;
  /** The node index owning the vnode at the same position of #tokens. */
  readonly #owners: Uint32Array;
  /** Position in #tokens of the first vnode of each distinct token: one per segment. */
  readonly #segmentEnds: Uint32Array;

  constructor(nodes: Iterable<NodeId>, options: RingOptions = {}) {
    const vnodes = options.vnodes ?? DEFAULT_VNODES;
    if (!Number.isInteger(vnodes) || vnodes < 1 || vnodes > MAX_VNODES) {
      throw new RingError(`vnodes must be an integer in 1..${MAX_VNODES}, got ${String(vnodes)}`);
    }
    const distinct = new Set<NodeId>();
    for (const node of nodes) {
      assertNodeId(node);
      distinct.add(node);
    }
    const sorted = [...distinct].sort();
    this.nodes = Object.freeze(sorted);
    this.vnodes = vnodes;
    this.#indexOfNode = new Map(sorted.map((node, index) => [node, index]));

    // Entry e = nodeIndex * vnodes + vnodeIndex, so ordering equal tokens by e orders them by node
    // id, then vnode index.
    const count = sorted.length * vnodes;
    const rawTokens = new Uint32Array(count);
    for (let nodeIndex = 0; nodeIndex < sorted.length; nodeIndex++) {
      const node = sorted[nodeIndex]!;
      for (let v = 0; v < vnodes; v++) rawTokens[nodeIndex * vnodes + v] = vnodeToken(node, v);
    }
    const order = new Uint32Array(count);
    for (let e = 0; e < count; e++) order[e] = e;
    order.sort((a, b) => rawTokens[a]! - rawTokens[b]! || a - b);

    this.#tokens = new Uint32Array(count);
    this.#owners = new Uint32Array(count);
    const segmentEnds: number[] = [];
    for (let position = 0; position < count; position++) {
      const entry = order[position]!;
      const token = rawTokens[entry]!;
      this.#tokens[position] = token;
      this.#owners[position] = Math.floor(entry / vnodes);
      if (position === 0 || token !== this.#tokens[position - 1]) segmentEnds.push(position);
    }
    this.#segmentEnds = Uint32Array.from(segmentEnds);
  }

  has(node: NodeId): boolean {
    return this.#indexOfNode.has(node);
  }

  /** The first `n` distinct nodes clockwise from the key's token (fewer if the ring has fewer nodes). */
  preferenceList(key: string | Uint8Array, n: number): NodeId[] {
    return this.preferenceListForToken(hashKey(key), n);
  }

  preferenceListForToken(token: number, n: number): NodeId[] {
    assertToken(token);
    assertReplicaCount(n);
    if (this.nodes.length === 0) return [];
    return this.#distinctFrom(this.#positionOf(token), n).map((index) => this.nodes[index]!);
  }

  /**
   * Dynamo's sloppy quorum. The first `n` distinct nodes are the preference list; each one for which
   * `isAvailable(node)` is false is replaced, in order, by the next available node further clockwise
   * that is not in the preference list and not already used, and that placement names the node it
   * stands in for. Available preference-list nodes keep their place. Returns fewer than `n`
   * placements when not enough nodes are available. `isAvailable` is called at most once per node.
   */
  sloppyPreferenceList(key: string | Uint8Array, n: number, isAvailable: (node: NodeId) => boolean): Placement[] {
    assertReplicaCount(n);
    const nodeCount = this.nodes.length;
    if (nodeCount === 0) return [];
    const tokens = this.#tokens.length;
    const start = this.#positionOf(hashKey(key));
    const wanted = Math.min(n, nodeCount);

    const seen = new Uint8Array(nodeCount);
    const preference: number[] = [];
    let step = 0;
    while (preference.length < wanted) {
      const owner = this.#ownerAt(start + step++, tokens);
      if (seen[owner] === 0) {
        seen[owner] = 1;
        preference.push(owner);
      }
    }

    const UNKNOWN = 0;
    const UP = 1;
    const DOWN = 2;
    const availability = new Uint8Array(nodeCount);
    const isUp = (index: number): boolean => {
      if (availability[index] === UNKNOWN) availability[index] = isAvailable(this.nodes[index]!) ? UP : DOWN;
      return availability[index] === UP;
    };

    const placements: Placement[] = [];
    for (const index of preference) {
      if (isUp(index)) {
        placements.push({ node: this.nodes[index]! });
        continue;
      }
      // Continue the clockwise walk past the preference list; every node met there is either used as
      // a fallback now or unavailable, so the walk never needs to revisit it.
      while (step < tokens) {
        const candidate = this.#ownerAt(start + step++, tokens);
        if (seen[candidate] !== 0) continue;
        seen[candidate] = 1;
        if (isUp(candidate)) {
          placements.push({ node: this.nodes[candidate]!, standsInFor: this.nodes[index]! });
          break;
        }
      }
    }
    return placements;
  }

  /** Fraction (0..1) of the token space for which each node is the primary owner; sums to 1. */
  ownership(): Map<NodeId, number> {
    const shares = new Map<NodeId, number>(this.nodes.map((node) => [node, 0]));
    this.#forEachSegment((range, endPosition) => {
      const node = this.nodes[this.#owners[endPosition]!]!;
      shares.set(node, shares.get(node)! + rangeSize(range) / TOKEN_SPACE);
    });
    return shares;
  }

  /** Every vnode segment of the ring (contiguous, covering the whole ring once), in token order. */
  segments(): TokenRange[] {
    const segments: TokenRange[] = [];
    this.#forEachSegment((range) => segments.push(range));
    return segments;
  }

  /** Distinct replicas of a segment or range: the preference list of its end token. */
  replicasOf(range: TokenRange, n: number): NodeId[] {
    assertRange(range);
    return this.preferenceListForToken(range.end, n);
  }

  /** This ring plus `node` (the same ring if it is already a member). */
  withNode(node: NodeId): Ring {
    assertNodeId(node);
    if (this.has(node)) return this;
    return new Ring([...this.nodes, node], { vnodes: this.vnodes });
  }

  /** This ring without `node` (the same ring if it is not a member). */
  withoutNode(node: NodeId): Ring {
    assertNodeId(node);
    if (!this.has(node)) return this;
    return new Ring(
      this.nodes.filter((member) => member !== node),
      { vnodes: this.vnodes },
    );
  }

  /** Position of the first vnode whose token is >= `token`, wrapping to 0 past the highest. */
  #positionOf(token: number): number {
    const tokens = this.#tokens;
    let low = 0;
    let high = tokens.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (tokens[middle]! < token) low = middle + 1;
      else high = middle;
    }
    return low === tokens.length ? 0 : low;
  }

  #ownerAt(position: number, tokenCount: number): number {
    return this.#owners[position >= tokenCount ? position % tokenCount : position]!;
  }

  /** Indices of the first `n` distinct nodes met walking clockwise from `position`. */
  #distinctFrom(position: number, n: number): number[] {
    const nodeCount = this.nodes.length;
    const wanted = Math.min(n, nodeCount);
    const tokenCount = this.#tokens.length;
    const found: number[] = [];
    const seen = new Uint8Array(nodeCount);
    // Every node owns at least one vnode, so this ends within one full turn.
    for (let step = 0; found.length < wanted; step++) {
      const owner = this.#ownerAt(position + step, tokenCount);
      if (seen[owner] === 0) {
        seen[owner] = 1;
        found.push(owner);
      }
    }
    return found;
  }

  #segmentStartToken(segment: number): number {
    const count = this.#segmentEnds.length;
    return this.#tokens[this.#segmentEnds[(segment + count - 1) % count]!]!;
  }

  #forEachSegment(visit: (range: TokenRange, endPosition: number) => void): void {
    for (let s = 0; s < this.#segmentEnds.length; s++) {
      const endPosition = this.#segmentEnds[s]!;
      visit({ start: this.#segmentStartToken(s), end: this.#tokens[endPosition]! }, endPosition);
    }
  }
}

function assertNodeId(node: unknown): asserts node is NodeId {
  if (typeof node !== "string" || node.length === 0) {
    throw new RingError(`node id must be a non-empty string, got ${JSON.stringify(node)}`);
  }
}

export function assertReplicaCount(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RingError(`replica count n must be a positive integer, got ${n}`);
}
