// A LocalReplica over real stores (LevelDB data and hint stores) in a fresh temporary
// directory, and its clean-up: what the replica, replica-stream, export and fuzz tests share.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HintStore, type HintStoreOptions } from "@dynamo-ts/hintstore";
import { Storage } from "@dynamo-ts/storage";
import { LocalReplica } from "../local/replica.js";
import type { ReplicaRebuild } from "../local/rebuild.js";
import { Metrics } from "../observability/metrics.js";

export interface TempReplica {
  readonly dir: string;
  readonly storage: Storage;
  readonly hints: HintStore;
  readonly metrics: Metrics;
  readonly replica: LocalReplica;
  /** Closes both stores and removes the directory. */
  close(): Promise<void>;
}

export interface TempReplicaOptions {
  readonly nodeId: string;
  /** Start of the temporary directory's name. */
  readonly prefix: string;
  /** Hint store options beyond its one-minute TTL. */
  readonly hints?: HintStoreOptions;
  readonly rebuild?: ReplicaRebuild;
}

export async function openTempReplica(options: TempReplicaOptions): Promise<TempReplica> {
  const dir = mkdtempSync(join(tmpdir(), options.prefix));
  const storage = await Storage.open(join(dir, "data"));
  const hints = await HintStore.open(join(dir, "hints"), { ttlMs: 60_000, ...options.hints });
  const metrics = new Metrics();
  const replica = new LocalReplica(options.nodeId, storage, hints, "siblings", metrics, options.rebuild);
  return {
    dir,
    storage,
    hints,
    metrics,
    replica,
    async close() {
      await storage.close();
      await hints.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
