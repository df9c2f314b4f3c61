// How large the messages a node accepts may be, derived from the value and record limits so
// that everything within the limits fits where it must go:
// - a client request: a value of --max-value-bytes in any protocol, Connect JSON included
//   (where the value travels as base64, 4/3 of its size, and a key may be escaped);
// - a message between nodes: a record merged from two states that are each within
//   --max-record-bytes (two concurrent writes through different coordinators, or two sides of a
//   partition), so that replication, hints, read repair and anti-entropy can always ship it.
// A record larger than that (merges of more than two states over the limit) is not shipped:
// each path that would send it counts and logs it, and the next write that resolves the key's
// siblings brings it back within limits everywhere.
export interface MessageLimits {
  /** KVService requests. */
  readonly publicReadMaxBytes: number;
  /** The largest record one node sends another. */
  readonly maxShippedRecordBytes: number;
  /** ReplicaService, AntiEntropyService and GossipService requests. */
  readonly internalReadMaxBytes: number;
  /** Admin and health requests: small messages only. */
  readonly controlReadMaxBytes: number;
}

const FRAMING_BYTES = 64 * 1024;

export function messageLimits(config: { readonly maxKeyBytes: number; readonly maxValueBytes: number; readonly maxRecordBytes: number }): MessageLimits {
  const maxShippedRecordBytes = 2 * config.maxRecordBytes;
  return {
    // base64 value + a key escaped as \uXXXX per byte + a context and field names.
    publicReadMaxBytes: Math.ceil(config.maxValueBytes / 3) * 4 + 6 * config.maxKeyBytes + 2 * FRAMING_BYTES,
    maxShippedRecordBytes,
    internalReadMaxBytes: maxShippedRecordBytes + config.maxKeyBytes + FRAMING_BYTES,
    controlReadMaxBytes: FRAMING_BYTES + 6 * config.maxKeyBytes,
  };
}
