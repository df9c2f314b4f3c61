export { MerkleError, InvalidMerkleArgumentError, TokenOutOfRangeError, TreeShapeMismatchError } from "./errors.js";
export { HASH_BYTES, HASH_FORMAT_VERSION, entryHash } from "./hash.js";
export { DEFAULT_DEPTH, MAX_DEPTH, MIN_DEPTH, MerkleTree, type LeafEntry, type MerkleTreeOptions } from "./tree.js";
export { diffEntries, diffTrees, differingChildren, differingNodes, nodeHashes, type EntryDiff, type RemoteNodeHash, type TreeDiff } from "./diff.js";
