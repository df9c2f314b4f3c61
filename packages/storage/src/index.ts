export { DEFAULT_MAX_BATCH_SIZE, Storage } from "./storage.js";
export type { StorageOptions, StorageStats, StoredChange, StoredEntry } from "./storage.js";
export { STORAGE_FORMAT } from "./layout.js";
export {
  StorageClosedError,
  StorageCorruptionError,
  StorageError,
  StorageFormatError,
  StorageInputError,
  StorageOpenError,
  StorageWriteError,
} from "./errors.js";
