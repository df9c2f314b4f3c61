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

/**
 * A write failed or was refused. A group-commit batch that could not be written rejects every call
 * in that batch with one such error; after that the store is not writable (see Storage.health()):
 * later writes and probes are refused with this error until reopen() succeeds. probe() and
 * reopen() also fail with it when the directory or LevelDB does not take their probe write.
 */
export class StorageWriteError extends StorageError {}

/**
 * The store has no open database: a reopen() could not open it again (the directory is gone,
 * unreadable, no longer holds this store, ...). Every call but close(), health(), stats() and
 * reopen() fails with this error until a reopen() succeeds.
 */
export class StorageUnavailableError extends StorageError {}
