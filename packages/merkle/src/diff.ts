import { InvalidMerkleArgumentError, TreeShapeMismatchError } from "./errors.js";
import { assertHash, equalHashes } from "./hash.js";
import type { MerkleTree } from "./tree.js";

/** A peer's hash of node `index` at some level, as carried by the anti-entropy RPC. */
export interface RemoteNodeHash {
  readonly index: number;
  readonly hash: Uint8Array;
}

/** The local hashes of the given nodes at one level: what a node answers a peer's request with. */
export function nodeHashes(tree: MerkleTree, level: number, indices: ReadonlyArray<number>): RemoteNodeHash[] {
  return indices.map((index) => ({ index, hash: tree.hashAt(level, index) }));
}

/** Indices (ascending) of the given nodes at `level` whose local hash differs from the peer's. */
export function differingNodes(local: MerkleTree, level: number, remoteHashes: ReadonlyArray<RemoteNodeHash>): number[] {
  const differing: number[] = [];
  for (const { index, hash } of remoteHashes) {
    assertHash(hash, `remote hash of node (${level}, ${index})`);
    // hashAt validates level and index.
    if (!equalHashes(local.hashAt(level, index), hash)) differing.push(index);
  }
  return differing.sort((a, b) => a - b);
}

/**
 * One step of the remote descent: given the peer's hashes for nodes at `level`, returns the
 * indices at level + 1 to request next — both children of every differing node. Empty at the
 * leaf level (use differingNodes there to learn which leaves differ).
 */
export function differingChildren(local: MerkleTree, level: number, remoteHashes: ReadonlyArray<RemoteNodeHash>): number[] {
  const differing = differingNodes(local, level, remoteHashes);
  if (level === local.depth) return [];
  return differing.flatMap((index) => [2 * index, 2 * index + 1]);
}

export interface TreeDiff {
  /** Indices of the leaves whose hashes differ, ascending. */
  readonly leaves: number[];
  /** Node hashes compared along the way (1 when the roots agree). */
  readonly hashesCompared: number;
}

/**
 * Compares two trees over the same range and depth, descending only into differing children.
 * Runs the same level-by-level exchange as the remote path, with `b` playing the peer.
 */
export function diffTrees(a: MerkleTree, b: MerkleTree): TreeDiff {
  assertSameShape(a, b);
  let frontier = [0];
  let hashesCompared = 0;
  for (let level = 0; level <= a.depth; level++) {
    const remote = nodeHashes(b, level, frontier);
    hashesCompared += remote.length;
    if (level === a.depth) {
      return { leaves: differingNodes(a, level, remote), hashesCompared };
    }
    frontier = differingChildren(a, level, remote);
    if (frontier.length === 0) break;
  }
  return { leaves: [], hashesCompared };
}

function assertSameShape(a: MerkleTree, b: MerkleTree): void {
  if (a.depth !== b.depth || a.range.start !== b.range.start || a.range.end !== b.range.end) {
    throw new TreeShapeMismatchError(
      `cannot compare a tree over (${a.range.start}, ${a.range.end}] depth ${a.depth} ` + `with one over (${b.range.start}, ${b.range.end}] depth ${b.depth}`,
    );
  }
}

export interface EntryDiff {
  /** Keys only the local side holds, sorted. */
  readonly onlyLocal: string[];
  /** Keys only the remote side holds, sorted. */
  readonly onlyRemote: string[];
  /** Keys both hold with different digests, sorted. */
  readonly different: string[];
}

/** Key-level diff of two leaves' entries: keys on one side only, or with different digests. */
export function diffEntries(
  local: ReadonlyArray<{ readonly key: string; readonly digest: Uint8Array }>,
  remote: ReadonlyArray<{ readonly key: string; readonly digest: Uint8Array }>,
): EntryDiff {
  const remoteByKey = indexByKey(remote, "remote");
  const localByKey = indexByKey(local, "local");
  const onlyLocal: string[] = [];
  const different: string[] = [];
  for (const [key, digest] of localByKey) {
    const remoteDigest = remoteByKey.get(key);
    if (remoteDigest === undefined) onlyLocal.push(key);
    else if (!equalHashes(digest, remoteDigest)) different.push(key);
  }
  const onlyRemote = [...remoteByKey.keys()].filter((key) => !localByKey.has(key));
  return { onlyLocal: onlyLocal.sort(), onlyRemote: onlyRemote.sort(), different: different.sort() };
}

function indexByKey(entries: ReadonlyArray<{ readonly key: string; readonly digest: Uint8Array }>, side: string): Map<string, Uint8Array> {
  const byKey = new Map<string, Uint8Array>();
  for (const { key, digest } of entries) {
    if (typeof key !== "string" || !(digest instanceof Uint8Array)) {
      throw new InvalidMerkleArgumentError(`${side} entries must be { key: string, digest: Uint8Array }`);
    }
    if (byKey.has(key)) {
      throw new InvalidMerkleArgumentError(`${side} entries list key ${JSON.stringify(key)} twice`);
    }
    byKey.set(key, digest);
  }
  return byKey;
}
