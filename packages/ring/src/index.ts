export { RingError } from "./errors.js";
export { hashKey, murmurHash3x86_32, vnodeToken } from "./hash.js";
export { TOKEN_SPACE, isToken, rangeContains, rangeIntervals, rangeSize, type TokenRange } from "./range.js";
export { DEFAULT_VNODES, MAX_VNODES, Ring, type NodeId, type Placement, type RingOptions } from "./ring.js";
export { replicaRanges, type ReplicaRange } from "./replica-ranges.js";
export {
  pendingOwners,
  pendingOwnersForToken,
  rangeTransfers,
  RingTransition,
  transfersTo,
  writeTargets,
  type RangeTransfer,
  type WriteTargets,
} from "./transitions.js";
