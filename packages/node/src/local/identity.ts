// The data directory says whose it is: `<data-dir>/identity.json` names the node and the cluster
// (a fingerprint of the cluster secret, never the secret) that wrote it, and whether the node is
// still rebuilding its replica after it started without its data. A node refuses a directory of
// another node or another cluster, and a node whose data store is gone (wiped, a new disk)
// rebuilds before it answers reads as a replica (rebuild.ts).
import { createHmac } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { writeFileAtomically } from "../util/atomic-file.js";
import { join } from "node:path";

export interface NodeIdentity {
  readonly nodeId: string;
  /** clusterFingerprint() of the cluster secret the directory was written with. */
  readonly cluster: string;
  readonly createdAt: string;
  /** True from a start without data until every range was rebuilt from a co-replica. */
  readonly rebuilding: boolean;
}

export const IDENTITY_FILE = "identity.json";

export class IdentityError extends Error {
  override name = "IdentityError";
}

/** Names the cluster without revealing its secret: the first 8 bytes of an HMAC, in hex. */
export function clusterFingerprint(clusterSecret: string): string {
  return createHmac("sha256", clusterSecret).update("dynamo-ts cluster identity v1").digest("hex").slice(0, 16);
}

export function loadIdentity(dataDir: string): NodeIdentity | undefined {
  const file = join(dataDir, IDENTITY_FILE);
  if (!existsSync(file)) return undefined;
  let parsed: Partial<NodeIdentity>;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8")) as Partial<NodeIdentity>;
  } catch (err) {
    throw new IdentityError(`${file} is not readable JSON (${(err as Error).message}); restore it or remove it to start this directory over`);
  }
  if (typeof parsed.nodeId !== "string" || typeof parsed.cluster !== "string" || typeof parsed.rebuilding !== "boolean") {
    throw new IdentityError(`${file} lacks nodeId, cluster or rebuilding; restore it or remove it to start this directory over`);
  }
  return { nodeId: parsed.nodeId, cluster: parsed.cluster, createdAt: String(parsed.createdAt ?? ""), rebuilding: parsed.rebuilding };
}

/** Written to a temporary file and renamed over the old one: a crash leaves one or the other. */
export function saveIdentity(dataDir: string, identity: NodeIdentity): void {
  const file = join(dataDir, IDENTITY_FILE);
  writeFileAtomically(file, JSON.stringify(identity, null, 2) + "\n", { flush: true });
}

/** Refuses a directory that another node, or a node of another cluster, wrote. */
export function checkIdentity(identity: NodeIdentity, nodeId: string, cluster: string, dataDir: string): void {
  if (identity.nodeId !== nodeId) {
    throw new IdentityError(`the data directory ${dataDir} belongs to node ${identity.nodeId}, not ${nodeId}: give each node its own --data-dir`);
  }
  if (identity.cluster !== cluster) {
    throw new IdentityError(
      `the data directory ${dataDir} was written by a node of another cluster (cluster secret fingerprint ${identity.cluster}, this node's is ${cluster}); ` +
        `use a fresh --data-dir, or, if you changed --cluster-secret on purpose, remove ${join(dataDir, IDENTITY_FILE)}`,
    );
  }
}
