/** Bytes that are not a valid encoding of a sibling set (or of a context): truncated, trailing data, unknown format version, non-canonical or out-of-range fields. */
export class InvalidEncodingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A client-supplied causal context that does not decode. Callers map it to InvalidArgument. */
export class InvalidContextError extends InvalidEncodingError {}

/** A sibling set or clock that cannot be represented: invalid node id, counter or timestamp, a sibling whose dot the clock does not cover. */
export class InvalidVersionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}
