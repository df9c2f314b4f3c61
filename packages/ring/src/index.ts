export { RingError } from "./errors.js";
export { hashKey, murmurHash3x86_32, vnodeToken } from "./hash.js";
export { TOKEN_SPACE, rangeContains, rangeSize, type TokenRange } from "./range.js";
export { DEFAULT_VNODES, MAX_VNODES, Ring, type NodeId, type Placement, type RingOptions } from "./ring.js";
