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
