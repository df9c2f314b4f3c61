import type { MemberState } from "./types.js";

const STATE_RANK: Readonly<Record<MemberState, number>> = { alive: 0, suspect: 1, dead: 2, left: 3 };

export interface Versioned {
  readonly state: MemberState;
  readonly incarnation: number;
}

/**
 * SWIM precedence as one total order on (incarnation, state rank), alive < suspect < dead < left:
 *
 * - alive(i) overrides anything with incarnation < i (a refutation, or a restart with a higher incarnation);
 * - suspect(i) overrides alive(j) for j <= i and suspect/dead/left(j) for j < i;
 * - dead(i) overrides alive/suspect(j) for j <= i;
 * - left(i) overrides everything at j <= i, so a departure is final unless the node comes back
 *   with a higher incarnation.
 *
 * Because it is a total order, merging is "keep the maximum", which is commutative, associative
 * and idempotent: every member converges on the same record whatever order updates arrive in.
 */
export function supersedes(incoming: Versioned, current: Versioned): boolean {
  if (incoming.incarnation !== current.incarnation) return incoming.incarnation > current.incarnation;
  return STATE_RANK[incoming.state] > STATE_RANK[current.state];
}
