// Random read/write/sync histories over a few replicas, with a ground truth of causality that is
// computed without vclock: which writes each replica knows of and which writes each write saw.
import fc from "fast-check";
import { emptySet, sync, update } from "../siblings.js";
import type { SiblingSet } from "../siblings.js";
import type { Dot, VersionVector } from "../clock.js";

export const REPLICAS = ["node-a", "node-b", "node-c"] as const;

export type Op =
  | { readonly kind: "read"; readonly replica: number }
  /** context: which earlier read supplies the context (modulo the reads so far); null = blind write. */
  | { readonly kind: "write"; readonly coordinator: number; readonly context: number | null; readonly remove: boolean }
  | { readonly kind: "sync"; readonly from: number; readonly to: number };

const replicaIndex = fc.integer({ min: 0, max: REPLICAS.length - 1 });

/** Roughly one write in five is a delete; one in seven is blind (no context). */
export const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("read" as const), replica: replicaIndex }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("write" as const),
      coordinator: replicaIndex,
      context: fc.option(fc.nat(), { freq: 6 }),
      remove: fc.nat({ max: 4 }).map((n) => n === 0),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("sync" as const), from: replicaIndex, to: replicaIndex }) },
);

export const historyArbitrary = (maxLength = 40): fc.Arbitrary<Op[]> => fc.array(opArbitrary, { maxLength, size: "max" });

export interface WriteRecord {
  readonly id: number;
  readonly dot: Dot;
  readonly remove: boolean;
  /** Ids of the writes the writer's context had seen: all of them are superseded by this write. */
  readonly saw: ReadonlySet<number>;
}

export interface Simulation {
  readonly states: SiblingSet[];
  /** Ground truth: ids of the writes each replica has learned of (directly or through a context). */
  readonly known: Set<number>[];
  readonly writes: WriteRecord[];
  /** Every state any replica went through, for law tests. */
  readonly history: SiblingSet[];
}

/** Writes are identified by their timestamp, which is the write's id; the value is the id in bytes. */
export function valueOf(id: number): Uint8Array {
  return new TextEncoder().encode(`w${id}`);
}

export function simulate(ops: readonly Op[]): Simulation {
  const states: SiblingSet[] = REPLICAS.map(() => emptySet());
  const known: Set<number>[] = REPLICAS.map(() => new Set<number>());
  const reads: { context: VersionVector; seen: ReadonlySet<number> }[] = [];
  const writes: WriteRecord[] = [];
  const history: SiblingSet[] = [emptySet()];
  for (const op of ops) {
    if (op.kind === "read") {
      reads.push({ context: (states[op.replica] as SiblingSet).clock, seen: new Set(known[op.replica]) });
    } else if (op.kind === "write") {
      const read = op.context === null || reads.length === 0 ? { context: new Map(), seen: new Set<number>() } : reads[op.context % reads.length];
      if (read === undefined) throw new Error("unreachable");
      const id = writes.length + 1;
      const coordinator = REPLICAS[op.coordinator] as string;
      const next = update(states[op.coordinator], read.context, coordinator, op.remove ? null : valueOf(id), id);
      const written = next.siblings.find((s) => s.timestamp === id);
      if (written === undefined) throw new Error(`write ${id} is missing from the coordinator's result`);
      writes.push({ id, dot: written.dot, remove: op.remove, saw: read.seen });
      states[op.coordinator] = next;
      const knownHere = known[op.coordinator] as Set<number>;
      for (const seen of read.seen) knownHere.add(seen);
      knownHere.add(id);
      history.push(next);
    } else {
      const merged = sync(states[op.to] as SiblingSet, states[op.from] as SiblingSet);
      states[op.to] = merged;
      for (const id of known[op.from] as Set<number>) (known[op.to] as Set<number>).add(id);
      history.push(merged);
    }
  }
  return { states, known, writes, history };
}

/** Ground truth: the writes a replica knows of that no write it knows of has seen. */
export function expectedSiblingIds(sim: Simulation, replica: number): number[] {
  const knownHere = sim.known[replica] as Set<number>;
  const superseded = new Set<number>();
  for (const id of knownHere) {
    for (const seen of (sim.writes[id - 1] as WriteRecord).saw) superseded.add(seen);
  }
  return [...knownHere].filter((id) => !superseded.has(id)).sort((x, y) => x - y);
}
