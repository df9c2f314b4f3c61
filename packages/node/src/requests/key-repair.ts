// Repairing one key whose version clock is damaged: a counter too close to 2^53 - 1 to issue
// another dot, or thousands of node ids, both written by forged contexts before contexts were
// sealed (context-seal.ts). Such a clock can't be fixed by merging, since the causal merge keeps
// the highest counter of every node forever: the key's state has to be replaced on every
// replica at once.
//
// The repair reads the key from every replica of its preference list (all must answer),
// merges them, and rebuilds the merged state with the same sibling values under fresh dots of
// the repairing node, so the clock has one small entry. Then it replaces the state on each
// replica only if the replica still holds exactly what was read (compare-and-set): a write
// that lands in between makes the repair start over rather than be lost.
import { Code, ConnectError } from "@connectrpc/connect";
import { compareDots, encodeSiblingSet, type Sibling, type SiblingSet, sync } from "@dynamo-ts/vclock";

export interface KeyRepairDeps {
  readonly nodeId: string;
  preferenceList(key: string): readonly string[];
  read(node: string, key: string, signal: AbortSignal): Promise<SiblingSet | undefined>;
  /** Replaces the replica's state of `key` by `replacement` if it is still `expected` (empty: absent). */
  reset(node: string, key: string, expected: Uint8Array, replacement: Uint8Array, signal: AbortSignal): Promise<boolean>;
}

export interface KeyRepairResult {
  readonly replicas: readonly string[];
  readonly siblings: number;
  readonly clockEntriesBefore: number;
  readonly highestCounterBefore: number;
  readonly attempts: number;
}

const MAX_ATTEMPTS = 5;

/**
 * The same siblings (values, tombstones, timestamps, content types) under fresh dots (node, 1..k) in
 * timestamp order, and a clock of one entry that covers exactly them. Siblings with the same value,
 * content type and timestamp are one write seen twice (a replica already rebuilt by an interrupted
 * repair): kept once.
 */
export function rebuildVersion(merged: SiblingSet, node: string): SiblingSet {
  const ordered = [...merged.siblings].sort((a, b) => a.timestamp - b.timestamp || compareDots(a.dot, b.dot));
  const distinct = ordered.filter(
    (s, i) => !ordered.slice(0, i).some((t) => t.timestamp === s.timestamp && t.contentType === s.contentType && sameValue(t.value, s.value)),
  );
  const siblings: Sibling[] = distinct.map(({ value, timestamp, contentType }, i) => ({
    dot: { node, counter: i + 1 },
    value,
    timestamp,
    ...(contentType === undefined ? {} : { contentType }),
  }));
  return { clock: new Map(siblings.length > 0 ? [[node, siblings.length]] : []), siblings };
}

/** Two values (null: a tombstone) hold the same bytes. */
export function sameValue(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

export async function repairKey(deps: KeyRepairDeps, key: string, signal: AbortSignal): Promise<KeyRepairResult> {
  const replicas = deps.preferenceList(key);
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const read = await Promise.allSettled(replicas.map((node) => deps.read(node, key, signal)));
    const failed = replicas.filter((_, i) => read[i]!.status === "rejected");
    if (failed.length > 0) {
      const reasons = failed.map((node) => `${node}: ${String((read[replicas.indexOf(node)] as PromiseRejectedResult).reason)}`);
      throw new ConnectError(`every replica of the key must answer to repair it; ${reasons.join("; ")}`, Code.Unavailable);
    }
    const states = read.map((r) => (r as PromiseFulfilledResult<SiblingSet | undefined>).value);
    let merged: SiblingSet | undefined;
    for (const state of states) if (state) merged = merged ? sync(merged, state) : state;
    if (!merged || merged.siblings.length === 0) throw new ConnectError(`key ${JSON.stringify(key)} is not stored on any of its replicas`, Code.NotFound);
    const rebuilt = encodeSiblingSet(rebuildVersion(merged, deps.nodeId));
    const replaced = await Promise.all(
      replicas.map((node, i) => deps.reset(node, key, states[i] ? encodeSiblingSet(states[i]) : new Uint8Array(), rebuilt, signal)),
    );
    if (replaced.every(Boolean)) {
      return {
        replicas,
        siblings: rebuildVersion(merged, deps.nodeId).siblings.length,
        clockEntriesBefore: merged.clock.size,
        highestCounterBefore: Math.max(0, ...merged.clock.values()),
        attempts: attempt,
      };
    }
  }
  throw new ConnectError(
    `key ${JSON.stringify(key)} changed on a replica during each of ${MAX_ATTEMPTS} repair attempts; retry when writes to it pause`,
    Code.Aborted,
  );
}
