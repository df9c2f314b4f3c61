// Merkle-tree anti-entropy: what the rest of the node (and its tests) use of it. README.md lists
// the files.
export { AntiEntropy, type AntiEntropyStatus } from "./anti-entropy.js";
export type { AntiEntropyDeps, AntiEntropyOptions } from "./options.js";
export { ExchangeProtocolError } from "./lockstep.js";
export type { ExchangeOutcome, RangeExchangeResult } from "./initiator.js";
export { MAX_TREE_DEPTH, MIN_TREE_DEPTH } from "./limits.js";
export { CONFIRM_AFTER_GRACE_FRACTION, DIGEST_BYTES, chunks, missingKeyDecision, rangesOverlap, treeDepthFor, versionDigest } from "./ranges.js";
export { TokenBucket } from "./throttle.js";
export { antiEntropyService, repairResponse, statusResponse } from "./service.js";
// The ranges a node replicates are the ring's; re-exported for the node's tests.
export { replicaRanges, type ReplicaRange } from "@dynamo-ts/ring";
