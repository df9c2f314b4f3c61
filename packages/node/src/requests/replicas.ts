// The seam between request logic and replica I/O. The coordinator, anti-entropy and the
// tombstone collector reach replicas only through `Replicas`: the local store for this node, a
// peer over RPC otherwise (wired in node.ts), or fakes in tests (test-support/coordinator-bench).
import { encodeSiblingSet, type SiblingSet } from "@dynamo-ts/vclock";

/** A key's version as it is shipped: the sibling set and its encoding, made once per write. */
export interface VersionedRecord {
  readonly set: SiblingSet;
  readonly encoded: Uint8Array;
}

export function versionedRecord(set: SiblingSet): VersionedRecord {
  return { set, encoded: encodeSiblingSet(set) };
}

/** One replica of a key as the coordinator sees it: the local store or a peer over RPC. */
export interface ReplicaEndpoint {
  /** Merge `record` into the replica (or, with hintFor, keep it as a hint for that node). */
  write(key: string, record: VersionedRecord, hintFor: string | undefined, signal: AbortSignal): Promise<void>;
  read(key: string, signal: AbortSignal): Promise<SiblingSet | undefined>;
}

/** Every replica this node can reach, and which of them are worth sending to. */
export interface Replicas {
  endpoint(node: string): ReplicaEndpoint;
  /** Whether a node is worth sending to now (the failure detector's and gossip's view). */
  isAvailable(node: string): boolean;
}
