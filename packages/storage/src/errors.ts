/** Base class of every error this package throws on its own account (LevelDB's own errors pass through). */
export class StorageError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The store was closed (or is closing): the call was not performed. */
export class StorageClosedError extends StorageError {
  constructor(operation: string) {
    super(`storage is closed: cannot ${operation}`);
  }
}

/** The directory holds data in another format, or a LevelDB database that this package did not write. */
export class StorageFormatError extends StorageError {}

/** The directory could not be opened (missing permissions, locked by another process, ...). */
export class StorageOpenError extends StorageError {}

/** A stored value does not decode: the database was damaged or written by something else. */
export class StorageCorruptionError extends StorageError {}

/** Bad input: a key that is not well-formed Unicode, an invalid token range or option. */
export class StorageInputError extends StorageError {}

/** A group-commit batch could not be written; every call in that batch is rejected with this error. */
export class StorageWriteError extends StorageError {}
