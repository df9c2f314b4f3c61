import { InvalidMerkleArgumentError } from "./errors.js";

/**
 * A ring range: tokens t with start < t <= end, wrapping around 2^32 when start >= end;
 * start === end means the whole ring.
 */
export interface TokenRange {
  readonly start: number;
  readonly end: number;
}

/** Number of distinct 32-bit tokens. */
export const TOKEN_SPACE = 2 ** 32;

export function isToken(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value < TOKEN_SPACE;
}

export function assertValidRange(range: TokenRange): void {
  if (range === null || typeof range !== "object") {
    throw new InvalidMerkleArgumentError("range must be an object { start, end }");
  }
  if (!isToken(range.start) || !isToken(range.end)) {
    throw new InvalidMerkleArgumentError(
      `range bounds must be integers in [0, 2^32): got start=${String(range.start)}, end=${String(range.end)}`,
    );
  }
}

/** How many tokens the range holds: 2^32 for the whole ring. */
export function rangeSpan(range: TokenRange): number {
  return range.start === range.end ? TOKEN_SPACE : mod32(range.end - range.start);
}

/**
 * Position of a token inside the range, counted from the first token after `start`
 * (0 .. span-1); a value >= span means the token is outside the range.
 */
export function offsetInRange(range: TokenRange, token: number): number {
  return mod32(token - range.start - 1);
}

export function tokenInRange(range: TokenRange, token: number): boolean {
  assertValidRange(range);
  return isToken(token) && offsetInRange(range, token) < rangeSpan(range);
}

function mod32(value: number): number {
  const remainder = value % TOKEN_SPACE;
  return remainder < 0 ? remainder + TOKEN_SPACE : remainder;
}
