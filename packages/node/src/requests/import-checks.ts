// What an imported record (a line of an export file: untrusted input) must satisfy beyond
// decoding, which already bounds its shape (canonical encoding, at most 4096 clock entries,
// counters up to 2^53 - 1, valid content types). A record a real cluster wrote stays far inside
// these bounds; one that does not would damage the key it is merged into for good, because the
// causal merge keeps the highest counter of every node forever (see key-repair.ts).
import { Code, ConnectError } from "@connectrpc/connect";
import type { Sibling, SiblingSet } from "@dynamo-ts/vclock";
import { NODE_ID } from "../config.js";
import { sameValue } from "./key-repair.js";

/** Most node ids an imported clock may name: one entry per node that ever coordinated a write to the key. */
export const MAX_IMPORT_CLOCK_ENTRIES = 256;
/** Counters at or above this are refused: 2^48 writes through one node to one key is no real history. */
export const MAX_IMPORT_COUNTER = 2 ** 48;
/** Sibling timestamps may be at most this far ahead of this node's clock (they decide last-write-wins). */
export const MAX_IMPORT_CLOCK_SKEW_MS = 24 * 3600 * 1000;

export interface ImportBounds {
  readonly maxValueBytes: number;
  /** This node's clock (ms since the epoch). */
  readonly now: number;
}

/** InvalidArgument unless `set`'s clock, timestamps and values are within what a real cluster writes. */
export function checkImportedRecord(set: SiblingSet, bounds: ImportBounds): void {
  const invalid = (message: string) => new ConnectError(`record refused: ${message}`, Code.InvalidArgument);
  if (set.siblings.length === 0) throw invalid("it has no version (no value and no tombstone)");
  if (set.clock.size > MAX_IMPORT_CLOCK_ENTRIES) {
    throw invalid(`its clock names ${set.clock.size} node ids, more than the ${MAX_IMPORT_CLOCK_ENTRIES} a key's history can have`);
  }
  for (const [node, counter] of set.clock) {
    if (!NODE_ID.test(node)) throw invalid(`its clock names ${JSON.stringify(node.slice(0, 80))}, which is not a node id`);
    if (counter >= MAX_IMPORT_COUNTER) {
      throw invalid(`its clock has counter ${counter} for ${node}, at or above 2^48: no real history (the key could soon take no new version)`);
    }
  }
  const latest = bounds.now + MAX_IMPORT_CLOCK_SKEW_MS;
  for (const sibling of set.siblings) {
    if (sibling.timestamp > latest) {
      throw invalid(`version ${describeDot(sibling)} has timestamp ${sibling.timestamp}, more than a day ahead of this node's clock`);
    }
    if (sibling.value !== null && sibling.value.byteLength > bounds.maxValueBytes) {
      throw invalid(`version ${describeDot(sibling)} holds ${sibling.value.byteLength} bytes, the value limit is ${bounds.maxValueBytes}`);
    }
  }
}

/**
 * A version of `imported` that `current` holds under the same dot with other content: the two
 * were issued independently (the key was written in this cluster and in the exported one by nodes
 * of the same id), and merging would keep only one of them.
 */
export function collidingVersion(current: SiblingSet, imported: SiblingSet): Sibling | undefined {
  const held = new Map(current.siblings.map((s) => [`${s.dot.counter}@${s.dot.node}`, s]));
  return imported.siblings.find((s) => {
    const other = held.get(`${s.dot.counter}@${s.dot.node}`);
    return other !== undefined && !sameVersion(other, s);
  });
}

export function describeDot(sibling: Sibling): string {
  return `(${sibling.dot.node}, ${sibling.dot.counter})`;
}

function sameVersion(a: Sibling, b: Sibling): boolean {
  return a.timestamp === b.timestamp && a.contentType === b.contentType && sameValue(a.value, b.value);
}
