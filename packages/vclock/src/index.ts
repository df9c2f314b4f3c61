export type { ClockOrder, Dot, NodeId, VersionVector } from "./clock.js";
export { compare, compareNodeIds, covers, emptyClock, equalClocks, mergeClocks } from "./clock.js";
export type { Sibling, SiblingSet } from "./siblings.js";
export {
  compareDots,
  emptySet,
  equalSets,
  isDeleted,
  isValidContentType,
  liveValues,
  MAX_CONTENT_TYPE_BYTES,
  resolveLastWriteWins,
  sync,
  update,
} from "./siblings.js";
export {
  CONTEXT_FORMAT_V1,
  MAX_CLOCK_ENTRIES,
  MAX_NODE_ID_BYTES,
  SIBLING_SET_FORMAT_V1,
  SIBLING_SET_FORMAT_V2,
  decodeContext,
  decodeSiblingSet,
  encodeContext,
  encodeSiblingSet,
} from "./encoding.js";
export { InvalidContextError, InvalidEncodingError, InvalidVersionError } from "./errors.js";
export {
  type CausalContext,
  contextAfterWrite,
  decodeClientContext,
  encodeClientContext,
  MAX_CONTEXT_DOTS,
  normalize as normalizeClientContext,
  writeWithContext,
} from "./client-context.js";
