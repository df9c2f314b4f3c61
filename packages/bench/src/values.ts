// Values to write: windows into one seeded random pool, so that making a value costs no
// allocation or randomness per operation (the generator must not compete with the nodes for CPU).
import { Rng } from "./random.js";

const POOL_BYTES = 1 << 16;

export class ValuePool {
  private readonly pool: Uint8Array;

  constructor(
    readonly valueSize: number,
    seed: number,
  ) {
    if (!Number.isInteger(valueSize) || valueSize < 0) throw new RangeError(`value size must be a non-negative integer, got ${valueSize}`);
    this.pool = new Rng(seed, 0x7a1e).fill(new Uint8Array(POOL_BYTES + valueSize));
  }

  /** A value of valueSize bytes starting at a random offset; callers must not modify it. */
  next(rng: Rng): Uint8Array {
    const offset = rng.nextInt(POOL_BYTES);
    return this.pool.subarray(offset, offset + this.valueSize);
  }
}
