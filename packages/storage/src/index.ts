export { DEFAULT_MAX_BATCH_SIZE, Storage } from "./storage.js";
export type { StorageHealth, StorageOptions, StorageStats, StoredChange, StoredEntry, StoredRecord, WriteFailureListener } from "./storage.js";
export { STORAGE_FORMAT } from "./layout.js";
export { ChurnTable } from "./churn-table.js";
export {
  StorageClosedError,
  StorageCorruptionError,
  StorageError,
  StorageFormatError,
  StorageInputError,
  StorageOpenError,
  StorageUnavailableError,
  StorageWriteError,
} from "./errors.js";
