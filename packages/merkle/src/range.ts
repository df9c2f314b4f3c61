import { TOKEN_SPACE, type TokenRange, isToken } from "@dynamo-ts/ring";
import { InvalidMerkleArgumentError } from "./errors.js";

// Token ranges are @dynamo-ts/ring's (start exclusive, end inclusive, wrapping; start === end is
// the whole ring). What follows is only what the tree adds: its own error and the leaf offset.

export function assertValidRange(range: TokenRange): void {
  if (range === null || typeof range !== "object") {
    throw new InvalidMerkleArgumentError("range must be an object { start, end }");
  }
  if (!isToken(range.start) || !isToken(range.end)) {
    throw new InvalidMerkleArgumentError(`range bounds must be integers in [0, 2^32): got start=${String(range.start)}, end=${String(range.end)}`);
  }
}

/**
 * Position of a token inside the range, counted from the first token after `start`
 * (0 .. span-1); a value >= span means the token is outside the range.
 */
export function offsetInRange(range: TokenRange, token: number): number {
  return mod32(token - range.start - 1);
}

function mod32(value: number): number {
  const remainder = value % TOKEN_SPACE;
  return remainder < 0 ? remainder + TOKEN_SPACE : remainder;
}
