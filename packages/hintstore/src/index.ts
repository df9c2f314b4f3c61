export {
  DEFAULT_LIST_LIMIT,
  DEFAULT_MAX_HINTS,
  DEFAULT_TTL_MS,
  HintStore,
  type Hint,
  type HintCounters,
  type HintStoreOptions,
  type NodeId,
  type TargetSummary,
} from "./hint-store.js";
export {
  HintStoreClosedError,
  HintStoreError,
  HintStoreFormatError,
  HintStoreFullError,
  HintStoreInputError,
  HintStoreOpenError,
} from "./errors.js";
export { FORMAT_MARKER, MAX_TARGET_BYTES } from "./codec.js";
