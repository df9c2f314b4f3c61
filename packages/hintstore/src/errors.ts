/** Base class of every error this package throws, so callers can catch them as a family. */
export class HintStoreError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** enqueue() refused a hint because the store already holds `maxHints` (a long outage must not fill the disk). */
export class HintStoreFullError extends HintStoreError {
  readonly target: string;
  readonly maxHints: number;

  constructor(target: string, maxHints: number) {
    super(`hint store is full (${maxHints} hints stored); refusing a hint for target "${target}"`);
    this.target = target;
    this.maxHints = maxHints;
  }
}

/** The store was closed (or is closing); no further operations are accepted. */
export class HintStoreClosedError extends HintStoreError {
  constructor(operation: string) {
    super(`hint store is closed; cannot ${operation}`);
  }
}

/** A caller passed a bad argument (empty target, malformed id, bad option...). */
export class HintStoreInputError extends HintStoreError {}

/** The database on disk is not a hint store of a format this code understands, or a record in it is damaged. */
export class HintStoreFormatError extends HintStoreError {}

/** The underlying LevelDB could not be opened (missing directory permissions, locked by another process...). */
export class HintStoreOpenError extends HintStoreError {}
