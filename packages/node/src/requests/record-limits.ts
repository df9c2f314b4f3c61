// Limits on what one key's record may grow to, checked by the coordinator on the state a write
// would produce, before anything is stored. Siblings are a client's to resolve; without a limit,
// blind writes to one key grow its record until it no longer fits any message between nodes,
// and from then on nothing about the key replicates. The rule refuses a write only when the
// result is over a limit AND larger than what is stored, so a write that resolves siblings
// (a context covering them) is always accepted, even on a record that merges between
// replicas pushed over a limit.
import { Code, ConnectError } from "@connectrpc/connect";
import type { SiblingSet } from "@dynamo-ts/vclock";

export interface RecordLimits {
  readonly maxSiblings: number;
  readonly maxRecordBytes: number;
  /**
   * The largest record nodes send each other (message-limits.ts). A result over it could not
   * be replicated at all, so even a write that shrinks such a record is refused unless it
   * brings it under: only a write that resolves the siblings can.
   */
  readonly maxShippedRecordBytes?: number;
}

/** Warnings start at these fractions of the limits. */
export const WARN_SIBLINGS_FRACTION = 0.25;
export const WARN_RECORD_BYTES_FRACTION = 0.5;

/**
 * An upper bound of the record's encoded size (@dynamo-ts/vclock's sibling set encoding):
 * values plus at most 24 bytes per sibling (node index, counter, timestamp, length tags), a content
 * type's bytes plus 2 (its length tag) and, per clock entry, the node id's UTF-8 bytes plus 10.
 * Cheap: no encoding, no allocation.
 */
export function recordSizeBound(set: SiblingSet | undefined): number {
  if (set === undefined) return 0;
  let size = 16;
  for (const [node] of set.clock) size += 10 + node.length * 3;
  for (const sibling of set.siblings) size += 24 + (sibling.value?.byteLength ?? 0) + (sibling.contentType === undefined ? 0 : sibling.contentType.length + 2);
  return size;
}

export type LimitVerdict =
  { readonly ok: true; readonly nearLimit: boolean } | { readonly ok: false; readonly error: ConnectError; readonly reason: "siblings" | "bytes" };

/** Whether replacing `before` by `after` (the result of a client write) is within limits. */
export function checkRecordLimits(key: string, before: SiblingSet | undefined, after: SiblingSet, limits: RecordLimits): LimitVerdict {
  const siblings = after.siblings.length;
  if (siblings > limits.maxSiblings && siblings > (before?.siblings.length ?? 0)) {
    return {
      ok: false,
      reason: "siblings",
      error: new ConnectError(
        `key ${JSON.stringify(key)} would have ${siblings} siblings, more than the limit of ${limits.maxSiblings}: ` +
          "read the key and write back one resolved value with the context the read returned",
        Code.FailedPrecondition,
      ),
    };
  }
  const bytes = recordSizeBound(after);
  const unshippable = limits.maxShippedRecordBytes !== undefined && bytes > limits.maxShippedRecordBytes;
  if (bytes > limits.maxRecordBytes && (unshippable || bytes > recordSizeBound(before))) {
    return {
      ok: false,
      reason: "bytes",
      error: new ConnectError(
        `key ${JSON.stringify(key)} would hold ${bytes} bytes in ${siblings} sibling(s), more than the record limit of ${limits.maxRecordBytes}: ` +
          "resolve its siblings (read the key, write back one value with the read's context) or write a smaller value",
        Code.FailedPrecondition,
      ),
    };
  }
  const nearLimit =
    siblings >= Math.max(2, Math.ceil(limits.maxSiblings * WARN_SIBLINGS_FRACTION)) || bytes >= limits.maxRecordBytes * WARN_RECORD_BYTES_FRACTION;
  return { ok: true, nearLimit };
}
