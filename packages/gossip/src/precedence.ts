import type { MemberState, RingStatus } from "./types.js";

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

const RING_RANK: Readonly<Record<RingStatus, number>> = { joining: 0, normal: 1, leaving: 2, left: 3, removed: 4 };

export interface RingVersioned {
  readonly ringStatus: RingStatus;
  readonly ringVersion: number;
}

/**
 * Precedence of ring statuses, again one total order so that merging is "keep the maximum":
 * `removed` is above everything (an operator's removal must dominate whatever the removed member
 * itself still says, whatever its version), removed records among themselves by version; every other
 * status by (version, rank) with joining < normal < leaving < left.
 */
export function ringSupersedes(incoming: RingVersioned, current: RingVersioned): boolean {
  const incomingRemoved = incoming.ringStatus === "removed";
  const currentRemoved = current.ringStatus === "removed";
  if (incomingRemoved !== currentRemoved) return incomingRemoved;
  if (incoming.ringVersion !== current.ringVersion) return incoming.ringVersion > current.ringVersion;
  return RING_RANK[incoming.ringStatus] > RING_RANK[current.ringStatus];
}
