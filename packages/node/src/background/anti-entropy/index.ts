// Merkle-tree anti-entropy: what the rest of the node uses of it.
export * from "./anti-entropy.js";
export { ExchangeProtocolError } from "./lockstep.js";
export type { AntiEntropyDeps, AntiEntropyOptions } from "./options.js";
export { MAX_TREE_DEPTH, MIN_TREE_DEPTH } from "./limits.js";
export * from "./ranges.js";
export { TokenBucket } from "./throttle.js";
export { antiEntropyService, repairResponse, statusResponse } from "./service.js";
// The ranges a node replicates are the ring's; re-exported for the node's tests.
export { replicaRanges, type ReplicaRange } from "@dynamo-ts/ring";
