/** Base class of every error this package throws, so callers can catch them as a family. */
export class HintStoreError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The limit an enqueue ran into (see HintStoreOptions for each). */
export type HintStoreCap = "maxHints" | "maxBytes" | "maxBytesPerTarget" | "maxRecordBytes";

export interface HintStoreFullDetails {
  readonly target: string;
  readonly cap: HintStoreCap;
  /** What the cap already holds: hints for maxHints, bytes otherwise; for maxRecordBytes the refused record's bytes. */
  readonly current: number;
  /** What the enqueue would have added: 1 hint, or bytes (for a merge, the growth); for maxRecordBytes the record's bytes. */
  readonly requested: number;
  /** The cap's configured value. */
  readonly limit: number;
  /** The store's maxHints option (kept from the first version of this error). */
  readonly maxHints: number;
}

/**
 * enqueue() refused a hint because it would exceed one of the store's caps (a long outage must not fill
 * the disk or the memory of the delivery worker). Nothing was changed.
 */
export class HintStoreFullError extends HintStoreError implements HintStoreFullDetails {
  readonly target: string;
  readonly cap: HintStoreCap;
  readonly current: number;
  readonly requested: number;
  readonly limit: number;
  readonly maxHints: number;

  constructor(details: HintStoreFullDetails) {
    super(fullMessage(details));
    this.target = details.target;
    this.cap = details.cap;
    this.current = details.current;
    this.requested = details.requested;
    this.limit = details.limit;
    this.maxHints = details.maxHints;
  }
}

function fullMessage({ target, cap, current, requested, limit }: HintStoreFullDetails): string {
  const refusing = `refusing a hint for target ${JSON.stringify(target)}`;
  switch (cap) {
    case "maxHints":
      return `hint store is full (${current} hints stored); ${refusing} (maxHints ${limit})`;
    case "maxRecordBytes":
      return `hint record of ${current} bytes exceeds maxRecordBytes (${limit}); ${refusing}`;
    case "maxBytes":
      return `hint store is full (${current} bytes stored, ${requested} more requested, maxBytes ${limit}); ${refusing}`;
    case "maxBytesPerTarget":
      return `hint store is full for this target (${current} bytes stored, ${requested} more requested, maxBytesPerTarget ${limit}); ${refusing}`;
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

/**
 * The underlying LevelDB could not be opened (missing directory permissions, locked by another process...).
 * Also what every operation rejects with after a reopen() that failed, until a reopen() succeeds.
 */
export class HintStoreOpenError extends HintStoreError {}

/**
 * LevelDB failed to write a batch (disk full, I/O error, read-only file system). Nothing of that batch is
 * acknowledged. LevelDB then refuses every further write until the store is reopened: see reopen() and
 * lastWriteError().
 */
export class HintStoreWriteError extends HintStoreError {}
