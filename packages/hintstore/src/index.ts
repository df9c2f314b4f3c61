export {
  DEFAULT_LIST_LIMIT,
  DEFAULT_MAX_BYTES,
  DEFAULT_MAX_BYTES_PER_TARGET,
  DEFAULT_MAX_HINTS,
  DEFAULT_MAX_RECORD_BYTES,
  DEFAULT_TTL_MS,
  HintStore,
  newerRecordWins,
  type Hint,
  type HintCounters,
  type HintStoreOptions,
  type MergeRecords,
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
  HintStoreWriteError,
  type HintStoreCap,
  type HintStoreFullDetails,
} from "./errors.js";
export { FORMAT_MARKER, MAX_TARGET_BYTES } from "./codec.js";
