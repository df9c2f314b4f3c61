// The YCSB core workloads that a key-value store without scans can run (E, scans, is left
// out), and the key space they share. Pure.
import { type KeyChooser, LatestChooser, type Rng, UniformChooser, ZipfianChooser } from "./random.js";

export type WorkloadName = "A" | "B" | "C" | "D" | "F";
export type Distribution = "zipfian" | "uniform" | "latest";
/** read: get. update: put with the newest context this run has seen for the key. insert: put
 * of a new key. readModifyWrite: get, then put with the context that get returned. */
export type OperationKind = "read" | "update" | "insert" | "readModifyWrite";

export const OPERATION_KINDS: readonly OperationKind[] = ["read", "update", "insert", "readModifyWrite"];

export interface WorkloadSpec {
  readonly name: WorkloadName;
  readonly description: string;
  /** Share of each operation kind; the shares sum to 1. */
  readonly mix: Readonly<Partial<Record<OperationKind, number>>>;
  /** Key distribution when --distribution does not override it. */
  readonly distribution: Distribution;
}

export const WORKLOADS: Readonly<Record<WorkloadName, WorkloadSpec>> = {
  A: { name: "A", description: "update heavy: 50% read, 50% update", mix: { read: 0.5, update: 0.5 }, distribution: "zipfian" },
  B: { name: "B", description: "read mostly: 95% read, 5% update", mix: { read: 0.95, update: 0.05 }, distribution: "zipfian" },
  C: { name: "C", description: "read only: 100% read", mix: { read: 1 }, distribution: "zipfian" },
  D: { name: "D", description: "read latest: 95% read, 5% insert", mix: { read: 0.95, insert: 0.05 }, distribution: "latest" },
  F: {
    name: "F",
    description: "read-modify-write: 50% read, 50% get + put with the context read",
    mix: { read: 0.5, readModifyWrite: 0.5 },
    distribution: "zipfian",
  },
};

export const WORKLOAD_NAMES = Object.keys(WORKLOADS) as WorkloadName[];

export function isWorkloadName(name: string): name is WorkloadName {
  return Object.hasOwn(WORKLOADS, name);
}

/** Maps a uniform draw u in [0, 1) to an operation kind by the workload's mix. */
export function chooseOperation(spec: WorkloadSpec, u: number): OperationKind {
  let cumulative = 0;
  let last: OperationKind | undefined;
  for (const kind of OPERATION_KINDS) {
    const share = spec.mix[kind] ?? 0;
    if (share <= 0) continue;
    cumulative += share;
    last = kind;
    if (u < cumulative) return kind;
  }
  // Shares that sum to 0.9999… leave a sliver at the top: it belongs to the last kind.
  if (last === undefined) throw new RangeError(`workload ${spec.name} has no operations`);
  return last;
}

export function keyChooser(distribution: Distribution): KeyChooser {
  switch (distribution) {
    case "zipfian":
      return new ZipfianChooser();
    case "uniform":
      return new UniformChooser();
    case "latest":
      return new LatestChooser();
  }
}

/**
 * The items that exist: [0, readable). Inserts take the next index and are readable only once
 * every insert below them has finished (YCSB's acknowledged counter), so a read never
 * asks for a key whose write is still in flight.
 */
export class KeySpace {
  private nextInsert: number;
  private readableCount: number;
  private readonly settledAbove = new Set<number>();

  constructor(loaded: number) {
    if (!Number.isInteger(loaded) || loaded < 1) throw new RangeError(`the key space needs at least one record, got ${loaded}`);
    this.nextInsert = loaded;
    this.readableCount = loaded;
  }

  get readable(): number {
    return this.readableCount;
  }

  /** Index for a new key. */
  issueInsert(): number {
    return this.nextInsert++;
  }

  /**
   * The insert of `index` finished. A failed insert settles too, or the readable range would
   * stop growing for the rest of the run; reads of its key may then find nothing (counted as
   * not found).
   */
  settle(index: number): void {
    if (index < this.readableCount || index >= this.nextInsert) return;
    this.settledAbove.add(index);
    while (this.settledAbove.delete(this.readableCount)) this.readableCount++;
  }

  /** A key for an operation on an existing item. */
  choose(chooser: KeyChooser, rng: Rng): number {
    return chooser.next(rng, this.readableCount);
  }
}

export function keyName(prefix: string, index: number): string {
  return `${prefix}${index}`;
}
