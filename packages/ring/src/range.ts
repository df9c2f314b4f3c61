import { RingError } from "./errors.js";

/** A token is an unsigned 32-bit integer: the ring is the interval [0, 2^32). */
export const TOKEN_SPACE = 0x1_0000_0000;

/**
 * The keys whose token t satisfies start < t <= end, wrapping around 2^32 when start >= end.
 * start === end means the whole ring.
 */
export interface TokenRange {
  readonly start: number;
  readonly end: number;
}

export function isToken(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value < TOKEN_SPACE;
}

export function assertToken(value: number, what = "token"): void {
  if (!isToken(value)) throw new RingError(`${what} must be an integer in [0, 2^32), got ${value}`);
}

export function assertRange(range: TokenRange): void {
  assertToken(range.start, "range start");
  assertToken(range.end, "range end");
}

/** Whether `token` lies in `range` (start exclusive, end inclusive, wrapping; start === end is the whole ring). */
export function rangeContains(range: TokenRange, token: number): boolean {
  assertRange(range);
  assertToken(token);
  const { start, end } = range;
  if (start < end) return token > start && token <= end;
  if (start > end) return token > start || token <= end;
  return true;
}

/** Number of tokens in `range` (2^32 for the whole ring). */
export function rangeSize(range: TokenRange): number {
  assertRange(range);
  const { start, end } = range;
  return start === end ? TOKEN_SPACE : (end - start + TOKEN_SPACE) % TOKEN_SPACE;
}

/**
 * The tokens of `range` as inclusive intervals [low, high]: one, or two for a range that wraps
 * past 2^32 (in ring order: the top of the ring first). The whole ring is [[0, 2^32 - 1]].
 */
export function rangeIntervals(range: TokenRange): Array<[number, number]> {
  assertRange(range);
  const { start, end } = range;
  const max = TOKEN_SPACE - 1;
  if (start === end) return [[0, max]];
  if (start < end) return [[start + 1, end]];
  const parts: Array<[number, number]> = [];
  if (start < max) parts.push([start + 1, max]);
  parts.push([0, end]);
  return parts;
}
