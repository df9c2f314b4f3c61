/** Base class of every error this package throws, so callers can catch them as one family. */
export class MerkleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** An argument is malformed: a bad range, depth, level, index, key or hash. */
export class InvalidMerkleArgumentError extends MerkleError {}

/** A token that does not fall inside the tree's range (start exclusive, end inclusive). */
export class TokenOutOfRangeError extends MerkleError {
  constructor(
    readonly token: number,
    readonly start: number,
    readonly end: number,
  ) {
    super(`token ${token} is outside the tree's range (${start}, ${end}] (start exclusive, end inclusive)`);
  }
}

/** Two trees (or a tree and a peer's answer) that cannot be compared: different range or depth. */
export class TreeShapeMismatchError extends MerkleError {}
