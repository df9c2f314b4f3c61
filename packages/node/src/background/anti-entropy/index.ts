// Merkle-tree anti-entropy: what the rest of the node uses of it.
export * from "./anti-entropy.js";
