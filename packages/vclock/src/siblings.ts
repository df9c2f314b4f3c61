import { compareNodeIds, covers, emptyClock, equalClocks, mergeClocks } from "./clock.js";
import type { Dot, NodeId, VersionVector } from "./clock.js";
import { InvalidVersionError } from "./errors.js";

export interface Sibling {
  readonly dot: Dot;
  /** null is a tombstone: the sibling records a delete. */
  readonly value: Uint8Array | null;
  /** Coordinator wall clock in ms. Used by last-write-wins and tombstone grace periods only, never for causality. */
  readonly timestamp: number;
  /**
   * The media type the value was written with, if the writer gave one (live values only).
   * Printable ASCII, 1..MAX_CONTENT_TYPE_BYTES bytes (see isValidContentType).
   */
  readonly contentType?: string;
}

/** Longest content type a sibling may carry, in bytes. */
export const MAX_CONTENT_TYPE_BYTES = 255;

/** A content type a sibling may carry: 1..MAX_CONTENT_TYPE_BYTES printable ASCII characters (space included). */
export function isValidContentType(contentType: string): boolean {
  return contentType.length > 0 && contentType.length <= MAX_CONTENT_TYPE_BYTES && /^[\x20-\x7e]+$/.test(contentType);
}

/**
 * A key's state on one replica: the concurrent values (siblings, each tagged with the unique dot of
 * the write that produced it) plus one causal context covering every write this replica has seen,
 * including the ones that were since superseded. Siblings are in canonical order (dot node, then
 * counter) and every sibling's dot is covered by the clock.
 */
export interface SiblingSet {
  readonly clock: VersionVector;
  readonly siblings: readonly Sibling[];
}

const NO_SIBLINGS: readonly Sibling[] = Object.freeze([]);

export function emptySet(): SiblingSet {
  return { clock: emptyClock(), siblings: NO_SIBLINGS };
}

/** Canonical sibling order: by dot node id, then counter. */
export function compareDots(a: Dot, b: Dot): number {
  return compareNodeIds(a.node, b.node) || a.counter - b.counter;
}

/**
 * A new write coordinated by `coordinator`, which must hold the key's stored state (so that its
 * counter for the key is the highest it ever issued). `context` is what the writer had read: the
 * stored siblings it covers are superseded, the others were written concurrently and stay as
 * siblings. A null value writes a tombstone. `contentType` (optional, live values only) is kept
 * with the value.
 */
export function update(
  stored: SiblingSet | undefined,
  context: VersionVector,
  coordinator: NodeId,
  value: Uint8Array | null,
  timestamp: number,
  contentType?: string,
): SiblingSet {
  if (coordinator.length === 0) throw new InvalidVersionError("coordinator node id must not be empty");
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw new InvalidVersionError(`timestamp must be a non-negative integer number of ms, got ${timestamp}`);
  }
  if (contentType !== undefined && (value === null || !isValidContentType(contentType))) {
    throw new InvalidVersionError(
      value === null
        ? "a tombstone has no content type"
        : `content type ${JSON.stringify(contentType)} is not 1..${MAX_CONTENT_TYPE_BYTES} printable ASCII characters`,
    );
  }
  const base = stored ?? emptySet();
  const counter = Math.max(base.clock.get(coordinator) ?? 0, context.get(coordinator) ?? 0) + 1;
  if (!Number.isSafeInteger(counter)) {
    throw new InvalidVersionError(`counter of node ${JSON.stringify(coordinator)} would exceed 2^53 - 1`);
  }
  const written: Sibling =
    contentType === undefined
      ? { dot: { node: coordinator, counter }, value, timestamp }
      : { dot: { node: coordinator, counter }, value, timestamp, contentType };

  const siblings: Sibling[] = [];
  let inserted = false;
  for (const sibling of base.siblings) {
    if (covers(context, sibling.dot)) continue;
    if (!inserted && compareDots(written.dot, sibling.dot) < 0) {
      siblings.push(written);
      inserted = true;
    }
    siblings.push(sibling);
  }
  if (!inserted) siblings.push(written);

  const clock = new Map(mergeClocks(base.clock, context));
  clock.set(coordinator, counter);
  return { clock, siblings };
}

/**
 * Merges two replicas' states of one key. A sibling survives when the other side has it too or has
 * not seen its dot; a sibling the other side has seen but no longer holds was superseded there.
 * Commutative, associative and idempotent.
 */
export function sync(a: SiblingSet, b: SiblingSet): SiblingSet {
  if (a === b) return a;
  const as = a.siblings;
  const bs = b.siblings;
  const siblings: Sibling[] = [];
  let i = 0;
  let j = 0;
  while (i < as.length || j < bs.length) {
    const x = as[i];
    const y = bs[j];
    const order = x === undefined ? 1 : y === undefined ? -1 : compareDots(x.dot, y.dot);
    if (order === 0 && x !== undefined && y !== undefined) {
      siblings.push(pickSameDot(x, y));
      i++;
      j++;
    } else if (order < 0 && x !== undefined) {
      if (!covers(b.clock, x.dot)) siblings.push(x);
      i++;
    } else if (y !== undefined) {
      if (!covers(a.clock, y.dot)) siblings.push(y);
      j++;
    }
  }
  return { clock: mergeClocks(a.clock, b.clock), siblings };
}

/**
 * A dot names exactly one write, so both sides normally hold identical siblings. Should they ever
 * differ (a node that lost its disk and reissued dots), pick deterministically so that replicas
 * still converge to the same bytes.
 */
function pickSameDot(x: Sibling, y: Sibling): Sibling {
  if (x === y) return x;
  if (x.timestamp !== y.timestamp) return x.timestamp > y.timestamp ? x : y;
  return (compareValues(x.value, y.value) || compareContentTypes(x.contentType, y.contentType)) >= 0 ? x : y;
}

/** None first, then by UTF-16 code units (content types are ASCII: byte order). */
function compareContentTypes(x: string | undefined, y: string | undefined): number {
  if (x === y) return 0;
  if (x === undefined) return -1;
  if (y === undefined) return 1;
  return x < y ? -1 : 1;
}

function compareValues(x: Uint8Array | null, y: Uint8Array | null): number {
  if (x === y) return 0;
  if (x === null) return -1;
  if (y === null) return 1;
  if (x.length !== y.length) return x.length - y.length;
  for (let k = 0; k < x.length; k++) {
    const d = (x[k] as number) - (y[k] as number);
    if (d !== 0) return d;
  }
  return 0;
}

/** Keeps only the sibling with the greatest (timestamp, dot node, dot counter). The clock is unchanged, so the result still dominates every discarded sibling. */
export function resolveLastWriteWins(set: SiblingSet): SiblingSet {
  if (set.siblings.length <= 1) return set;
  let winner = set.siblings[0] as Sibling;
  for (const sibling of set.siblings) {
    if (sibling.timestamp > winner.timestamp || (sibling.timestamp === winner.timestamp && compareDots(sibling.dot, winner.dot) > 0)) {
      winner = sibling;
    }
  }
  return { clock: set.clock, siblings: [winner] };
}

/** The values of the non-tombstone siblings, in canonical order. */
export function liveValues(set: SiblingSet): Uint8Array[] {
  const values: Uint8Array[] = [];
  for (const sibling of set.siblings) {
    if (sibling.value !== null) values.push(sibling.value);
  }
  return values;
}

/** True when no sibling holds a value: the key was never written or every sibling is a tombstone. */
export function isDeleted(set: SiblingSet): boolean {
  return set.siblings.every((sibling) => sibling.value === null);
}

/** Same clock and the same siblings (dots, values, timestamps and content types). */
export function equalSets(a: SiblingSet, b: SiblingSet): boolean {
  if (a === b) return true;
  if (a.siblings.length !== b.siblings.length || !equalClocks(a.clock, b.clock)) return false;
  for (let k = 0; k < a.siblings.length; k++) {
    const x = a.siblings[k] as Sibling;
    const y = b.siblings[k] as Sibling;
    if (x.dot.node !== y.dot.node || x.dot.counter !== y.dot.counter || x.timestamp !== y.timestamp || x.contentType !== y.contentType) return false;
    if (compareValues(x.value, y.value) !== 0) return false;
  }
  return true;
}
