// The oracle of the e2e suites: records every write a client attempted (acknowledged or not,
// with the values the write's context had seen) and checks the cluster's final state against
// the invariants of docs/architecture.md: 2 (no lost update), 3 (no resurrection) and
// 5 (bounded siblings):
//
//   - lost: an acknowledged put whose value is neither among the key's siblings nor causally
//     superseded. A value X is superseded by a write W whose context came from a read that
//     returned X (the context covers X). A superseding put only counts if its own value is
//     accounted for in turn (a put that never applied supersedes nothing); a superseding delete
//     always counts (its tombstone is invisible to reads, and an unacknowledged delete may have
//     applied).
//   - resurrected: a sibling that an acknowledged write had superseded (directly, or through a
//     chain of values that reads returned). Acknowledged deletes not being undone is this check.
//   - unknown: a sibling no client ever wrote (corruption, or state from an earlier run).
//   - duplicate: the same value twice in one sibling set (a retry or a coordinator that does not
//     deduplicate: invariant 5).
//   - divergent: two R=N reads of the same key through different coordinators disagree. Each of
//     them merged every replica, so with no writes in between they must be equal.
//
// Every value is unique (the workload names it after writer and sequence number), so a value
// identifies the write that produced it.

export type WriteKind = "put" | "delete";

export interface RecordedWrite {
  readonly kind: WriteKind;
  readonly key: string;
  /** The written value; absent for deletes. */
  readonly value?: string;
  /** Values the read that supplied this write's context returned; empty for a blind write. */
  readonly covers: readonly string[];
  readonly acknowledged: boolean;
  /** Which node coordinated the write, for reports. */
  readonly node: string;
  readonly startedAt: number;
  readonly endedAt: number;
  /** Why an unacknowledged write failed, for reports. */
  readonly error?: string;
}

/** The siblings one coordinator returned for one key at R=N; null when the key is not found. */
export interface FinalRead {
  readonly node: string;
  readonly key: string;
  readonly values: readonly string[] | null;
}

export interface Violation {
  readonly kind: "lost" | "resurrected" | "unknown" | "duplicate" | "divergent";
  readonly key: string;
  readonly value?: string;
  readonly node?: string;
  readonly detail: string;
}

export interface CheckReport {
  /** Writes recorded (acknowledged or not). */
  readonly operations: number;
  readonly acknowledged: number;
  readonly acknowledgedPuts: number;
  readonly acknowledgedDeletes: number;
  readonly keys: number;
  /** Acknowledged puts lost, counted once per value whatever number of coordinators saw it. */
  readonly lost: number;
  readonly violations: readonly Violation[];
  /** `checked N operations, lost M`, plus the other violations when there are any. */
  readonly summary: string;
}

export class HistoryError extends Error {
  override name = "HistoryError";
}

export class History {
  private readonly writes: RecordedWrite[] = [];
  private readonly putByValue = new Map<string, RecordedWrite>();

  record(write: RecordedWrite): void {
    if (write.kind === "put") {
      if (write.value === undefined) throw new HistoryError(`put of ${write.key} recorded without a value`);
      if (this.putByValue.has(write.value)) {
        throw new HistoryError(`value ${JSON.stringify(write.value)} written twice: the checker needs unique values`);
      }
      this.putByValue.set(write.value, write);
    } else if (write.value !== undefined) {
      throw new HistoryError(`delete of ${write.key} recorded with a value`);
    }
    this.writes.push(write);
  }

  get all(): readonly RecordedWrite[] {
    return this.writes;
  }

  /** Every key a write was attempted on, sorted. */
  keys(): string[] {
    return [...new Set(this.writes.map((w) => w.key))].sort();
  }

  acknowledgedCount(): number {
    return this.writes.reduce((n, w) => n + (w.acknowledged ? 1 : 0), 0);
  }

  /** Acknowledged writes that started and ended inside [from, to]. */
  acknowledgedBetween(from: number, to: number): number {
    return this.writes.filter((w) => w.acknowledged && w.startedAt >= from && w.endedAt <= to).length;
  }

  check(finalReads: readonly FinalRead[]): CheckReport {
    const violations: Violation[] = [];
    const lostValues = new Set<string>();
    const byKey = groupBy(this.writes, (w) => w.key);
    const readsByKey = groupBy(finalReads, (r) => r.key);

    for (const key of [...new Set([...byKey.keys(), ...readsByKey.keys()])].sort()) {
      const writes = byKey.get(key) ?? [];
      const reads = readsByKey.get(key) ?? [];
      if (writes.length > 0 && reads.length === 0) {
        throw new HistoryError(`no final read of ${key}: read every written key before checking`);
      }
      const causality = new KeyCausality(writes, this.putByValue);
      for (const read of reads) {
        const present = read.values ?? [];
        const presentSet = new Set(present);
        for (const value of duplicatesIn(present)) {
          violations.push({ kind: "duplicate", key, value, node: read.node, detail: `${value} appears more than once among the siblings` });
        }
        for (const value of presentSet) {
          const writer = this.putByValue.get(value);
          if (writer === undefined || writer.key !== key) {
            violations.push({ kind: "unknown", key, value, node: read.node, detail: `sibling ${JSON.stringify(value)} was never written to ${key}` });
            continue;
          }
          const superseder = causality.acknowledgedSuperseder(value);
          if (superseder !== undefined) {
            violations.push({
              kind: "resurrected",
              key,
              value,
              node: read.node,
              detail: `${value} is back although acknowledged ${describe(superseder)} had superseded it`,
            });
          }
        }
        const memo = new Map<string, boolean>();
        for (const write of writes) {
          if (write.kind !== "put" || !write.acknowledged) continue;
          const value = write.value!;
          if (!causality.accountedFor(value, presentSet, memo)) {
            if (!lostValues.has(value)) {
              lostValues.add(value);
              violations.push({
                kind: "lost",
                key,
                value,
                node: read.node,
                detail: `acknowledged ${describe(write)} is missing and no write that had seen it was applied`,
              });
            }
          }
        }
      }
      const distinct = new Map<string, string[]>();
      for (const read of reads) {
        const signature = read.values === null ? "<not found>" : JSON.stringify([...new Set(read.values)].sort());
        distinct.set(signature, [...(distinct.get(signature) ?? []), read.node]);
      }
      if (distinct.size > 1) {
        const views = [...distinct].map(([signature, nodes]) => `${nodes.join(",")}: ${signature}`).join("; ");
        violations.push({ kind: "divergent", key, detail: `R=N reads disagree: ${views}` });
      }
    }

    const acknowledged = this.writes.filter((w) => w.acknowledged);
    const others = violations.filter((v) => v.kind !== "lost");
    const counts = countBy(others, (v) => v.kind);
    const summary =
      `checked ${this.writes.length} operations, lost ${lostValues.size}` +
      (others.length > 0 ? `; ${[...counts].map(([kind, n]) => `${kind} ${n}`).join(", ")}` : "");
    return {
      operations: this.writes.length,
      acknowledged: acknowledged.length,
      acknowledgedPuts: acknowledged.filter((w) => w.kind === "put").length,
      acknowledgedDeletes: acknowledged.filter((w) => w.kind === "delete").length,
      keys: byKey.size,
      lost: lostValues.size,
      violations,
      summary,
    };
  }
}

/** Who superseded whom among one key's writes. */
class KeyCausality {
  /** value -> writes whose context covered it directly */
  private readonly supersededBy = new Map<string, RecordedWrite[]>();
  private readonly transitiveCoverMemo = new Map<RecordedWrite, ReadonlySet<string>>();

  constructor(
    private readonly writes: readonly RecordedWrite[],
    private readonly putByValue: ReadonlyMap<string, RecordedWrite>,
  ) {
    for (const write of writes) {
      for (const covered of write.covers) {
        this.supersededBy.set(covered, [...(this.supersededBy.get(covered) ?? []), write]);
      }
    }
  }

  /**
   * Whether the value's absence is explained: it is present, or a write that had seen it was
   * applied (a delete, or a put whose own value is accounted for).
   */
  accountedFor(value: string, present: ReadonlySet<string>, memo = new Map<string, boolean>()): boolean {
    const known = memo.get(value);
    if (known !== undefined) return known;
    if (present.has(value)) return true;
    memo.set(value, false); // in progress: a cycle (impossible with real reads) explains nothing
    const explained = (this.supersededBy.get(value) ?? []).some((write) => write.kind === "delete" || this.accountedFor(write.value!, present, memo));
    memo.set(value, explained);
    return explained;
  }

  /** An acknowledged write whose context (through the values reads returned) covered the value. */
  acknowledgedSuperseder(value: string): RecordedWrite | undefined {
    return this.writes.find((write) => write.acknowledged && this.transitiveCovers(write).has(value));
  }

  /**
   * Everything a write's context dominates: what its read returned and, since those values were
   * really stored (a read returned them), everything their own contexts had covered.
   */
  private transitiveCovers(write: RecordedWrite, visiting = new Set<RecordedWrite>()): ReadonlySet<string> {
    const memo = this.transitiveCoverMemo.get(write);
    if (memo) return memo;
    const covered = new Set<string>();
    visiting.add(write);
    for (const value of write.covers) {
      covered.add(value);
      const producer = this.putByValue.get(value);
      if (producer !== undefined && !visiting.has(producer)) {
        for (const earlier of this.transitiveCovers(producer, visiting)) covered.add(earlier);
      }
    }
    visiting.delete(write);
    this.transitiveCoverMemo.set(write, covered);
    return covered;
  }
}

function describe(write: RecordedWrite): string {
  const what = write.kind === "put" ? `put ${write.value}` : `delete of ${write.key}`;
  return `${what} via ${write.node}`;
}

function duplicatesIn(values: readonly string[]): string[] {
  const seen = new Set<string>();
  const duplicates = new Set<string>();
  for (const value of values) {
    if (seen.has(value)) duplicates.add(value);
    seen.add(value);
  }
  return [...duplicates];
}

function groupBy<T>(items: readonly T[], keyOf: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return groups;
}

function countBy<T>(items: readonly T[], keyOf: (item: T) => string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(keyOf(item), (counts.get(keyOf(item)) ?? 0) + 1);
  return counts;
}
