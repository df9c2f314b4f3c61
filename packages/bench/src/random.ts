// Seeded randomness and YCSB's key choosers. Pure: no clocks, no global Math.random, so that
// one seed gives every worker the same sequence of operations and keys on every run.

/** sfc32 seeded through splitmix32: fast, 128 bits of state, good enough for load generation. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** `stream` separates workers that share a seed: (seed, 0) and (seed, 1) are unrelated. */
  constructor(seed: number, stream = 0) {
    let state = (Math.trunc(seed) ^ Math.imul(Math.trunc(stream) + 1, 0x9e3779b9)) >>> 0;
    const splitmix = (): number => {
      state = (state + 0x9e3779b9) >>> 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = splitmix();
    this.b = splitmix();
    this.c = splitmix();
    this.d = splitmix();
    // The first outputs of a freshly seeded sfc32 are correlated with the seed.
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  nextUint32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 0x1_0000_0000;
  }

  /** Uniform integer in [0, bound). */
  nextInt(bound: number): number {
    if (!Number.isInteger(bound) || bound <= 0) throw new RangeError(`bound must be a positive integer, got ${bound}`);
    return Math.floor(this.next() * bound);
  }

  fill(bytes: Uint8Array): Uint8Array {
    let i = 0;
    for (; i + 4 <= bytes.length; i += 4) {
      const x = this.nextUint32();
      bytes[i] = x & 0xff;
      bytes[i + 1] = (x >>> 8) & 0xff;
      bytes[i + 2] = (x >>> 16) & 0xff;
      bytes[i + 3] = x >>> 24;
    }
    for (; i < bytes.length; i++) bytes[i] = this.nextUint32() & 0xff;
    return bytes;
  }
}

/** Picks an item index in [0, count). `count` may grow between calls (inserts). */
export interface KeyChooser {
  next(rng: Rng, count: number): number;
}

export class UniformChooser implements KeyChooser {
  next(rng: Rng, count: number): number {
    return rng.nextInt(count);
  }
}

/** YCSB's default skew: item i is chosen with probability proportional to 1 / (i+1)^0.99. */
export const ZIPFIAN_CONSTANT = 0.99;

/**
 * Zipfian over [0, count), item 0 the most popular, after Gray et al., "Quickly Generating
 * Billion-Record Synthetic Databases" (the algorithm of YCSB's ZipfianGenerator). zeta(count)
 * is computed once and extended incrementally when count grows, so inserts stay cheap.
 * No scrambling (YCSB's ScrambledZipfian): the ring hashes keys, so popular items are spread
 * over the nodes anyway.
 */
export class ZipfianChooser implements KeyChooser {
  private readonly theta: number;
  private readonly alpha: number;
  private readonly zeta2: number;
  private countForZeta = 0;
  private zetaN = 0;
  private eta = 0;

  constructor(theta = ZIPFIAN_CONSTANT) {
    if (!(theta > 0 && theta < 1)) throw new RangeError(`zipfian constant must be in (0, 1), got ${theta}`);
    this.theta = theta;
    this.alpha = 1 / (1 - theta);
    this.zeta2 = 1 + 0.5 ** theta;
  }

  next(rng: Rng, count: number): number {
    if (!Number.isInteger(count) || count <= 0) throw new RangeError(`count must be a positive integer, got ${count}`);
    if (count !== this.countForZeta) this.resize(count);
    const u = rng.next();
    const uz = u * this.zetaN;
    if (uz < 1) return 0;
    if (count > 1 && uz < this.zeta2) return 1;
    const item = Math.floor(count * (this.eta * u - this.eta + 1) ** this.alpha);
    return Math.min(item, count - 1);
  }

  private resize(count: number): void {
    let from = 0;
    let zeta = 0;
    if (count > this.countForZeta) {
      from = this.countForZeta;
      zeta = this.zetaN;
    }
    for (let i = from + 1; i <= count; i++) zeta += 1 / i ** this.theta;
    this.zetaN = zeta;
    this.countForZeta = count;
    // eta only matters for count >= 3 (items 0 and 1 are taken by the branches above).
    this.eta = count > 2 ? (1 - (2 / count) ** (1 - this.theta)) / (1 - this.zeta2 / zeta) : 0;
  }
}

/** YCSB's "latest": zipfian by recency, so the most recently inserted item is the most popular. */
export class LatestChooser implements KeyChooser {
  private readonly zipfian = new ZipfianChooser();

  next(rng: Rng, count: number): number {
    return count - 1 - this.zipfian.next(rng, count);
  }
}

/** A worker's random stream within a phase: same (seed, phase, worker), same sequence. */
export function workerRng(seed: number, phase: string, worker: number): Rng {
  let hash = 0x811c9dc5;
  for (let i = 0; i < phase.length; i++) hash = Math.imul(hash ^ phase.charCodeAt(i), 0x01000193) >>> 0;
  return new Rng(seed, (hash ^ Math.imul(worker + 1, 0x27d4eb2d)) >>> 0);
}
