// Merkle-tree anti-entropy: what the rest of the node uses of it.
export * from "./anti-entropy.js";
// The ranges a node replicates are the ring's; re-exported for the node's tests.
export { replicaRanges, type ReplicaRange } from "@dynamo-ts/ring";
