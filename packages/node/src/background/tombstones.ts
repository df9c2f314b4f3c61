// Tombstone collection. A delete is a tombstone version; removing it too early would let a
// replica or hint that still holds the older value bring the key back. The rule:
//
//   A key is purged only when (1) every replica of its preference list answered, (2) they
//   all hold exactly the same sibling set, (3) that set holds tombstones only, and (4) the
//   newest tombstone is older than the grace period, which is longer than the hint TTL —
//   so every hint created before the delete has expired and can no longer deliver an older
//   version. Each replica then removes the key only if it still stores exactly that set.
//
// What the rule cannot see is a node that was away longer than the grace period, or a disk
// restored from an old copy: such a node must be wiped before it rejoins (as with
// Cassandra's gc_grace_seconds).
//
// The same sweep removes stray keys: keys this node holds but no longer owns, left behind when
// a join gave their ranges to a new node. They cost disk, and they are a resurrection hazard:
// the stray copy gets no later writes, so once a later delete's tombstone is purged on the
// owners, a shrink that hands the range back to this node would bring the old value back. A
// key is a stray when the ring has stayed unchanged, with no join, decommission or removal in
// progress, for `cleanupDelayMs` (longer than gossip takes to reach every node and a request
// takes to finish, so no coordinator still counts this node for it), this node is a normal,
// rebuilt owner, and the key's settled preference list leaves this node out. The owners hold
// every acknowledged write of it (a joining node copies its ranges before it owns them). Its
// removal only goes ahead if the key is still exactly as scanned.
import type { Ring } from "@dynamo-ts/ring";
import type { Storage } from "@dynamo-ts/storage";
import { encodeSiblingSet, equalSets, isDeleted, type SiblingSet } from "@dynamo-ts/vclock";
import type { Replicas } from "../requests/replicas.js";
import type { Logger } from "../observability/log.js";
import type { Metrics } from "../observability/metrics.js";

/** Pure form of the rule above, over what each replica returned (undefined: not answered). */
export function isPurgeable(replies: ReadonlyArray<SiblingSet | undefined>, replicas: number, now: number, graceMs: number): boolean {
  if (replies.length !== replicas || replicas === 0) return false;
  const first = replies[0];
  if (!first || first.siblings.length === 0 || !isDeleted(first)) return false;
  if (!replies.every((s) => s !== undefined && equalSets(s, first))) return false;
  const newest = Math.max(...first.siblings.map((s) => s.timestamp));
  return now - newest > graceMs;
}

export interface TombstoneCollectorOptions {
  readonly nodeId: string;
  readonly n: number;
  readonly graceMs: number;
  readonly intervalMs: number;
  /** Tombstones collected per sweep, so a sweep stays short. */
  readonly maxPerSweep: number;
  /** How long the ring must stay unchanged before stray keys are removed; 0: never remove them. */
  readonly cleanupDelayMs: number;
}

/** What stray-key removal needs from the node (see the top of this file). */
export interface StrayKeys {
  /**
   * Since when the ring has stayed unchanged, with this node a normal, rebuilt owner in touch
   * with every other member; undefined while not.
   */
  settledSince(): number | undefined;
  /** Removes the key if the store still holds exactly `scanned`. */
  remove(key: string, scanned: SiblingSet): Promise<boolean>;
}

/** Stray keys are removed in groups of this many while the scan goes on. */
const STRAY_BATCH = 256;

export class TombstoneCollector {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;

  constructor(
    private readonly options: TombstoneCollectorOptions,
    private readonly storage: Storage,
    private readonly ring: () => Ring,
    private readonly replicas: Replicas,
    private readonly purge: (node: string, key: string, record: Uint8Array) => Promise<boolean>,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly strays?: StrayKeys,
    private readonly now: () => number = Date.now,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.sweep(), this.options.intervalMs);
    this.timer.unref();
  }

  /**
   * One pass over the local store: collects the tombstones this node is the primary replica
   * of, and removes stray keys when the ring has settled; returns the keys purged.
   */
  sweep(): Promise<number> {
    this.running ??= this.sweepOnce().finally(() => (this.running = undefined));
    return this.running;
  }

  private strayRemovalAllowed(): boolean {
    const since = this.strays?.settledSince();
    return this.options.cleanupDelayMs > 0 && since !== undefined && this.now() - since >= this.options.cleanupDelayMs;
  }

  private async sweepOnce(): Promise<number> {
    const { nodeId, n, graceMs } = this.options;
    const candidates: string[] = [];
    const removingStrays = this.strayRemovalAllowed();
    const strays: Array<{ key: string; set: SiblingSet }> = [];
    let straysRemoved = 0;
    for await (const { key, set } of this.storage.scan()) {
      // Asked of the ring for every key only while strays are removed; otherwise for tombstones past their grace.
      let owners = removingStrays ? this.ring().preferenceList(key, n) : undefined;
      if (owners !== undefined && !owners.includes(nodeId)) {
        strays.push({ key, set });
        if (strays.length >= STRAY_BATCH) straysRemoved += await this.removeStrays(strays.splice(0));
        continue;
      }
      if (candidates.length >= this.options.maxPerSweep) {
        // The scan goes on for stray keys only.
        if (removingStrays) continue;
        break;
      }
      if (!isDeleted(set) || set.siblings.length === 0) continue;
      if (this.now() - Math.max(...set.siblings.map((s) => s.timestamp)) <= graceMs) continue;
      // One node per key does the work: its primary.
      owners ??= this.ring().preferenceList(key, n);
      if (owners[0] !== nodeId) continue;
      candidates.push(key);
    }
    if (strays.length > 0) straysRemoved += await this.removeStrays(strays);
    if (straysRemoved > 0) this.log.info("removed keys this node no longer owns", { keys: straysRemoved });
    let purged = 0;
    for (const key of candidates) {
      try {
        if (await this.collect(key)) purged++;
      } catch (err) {
        this.log.warn("tombstone collection failed", { key, error: String(err) });
      }
    }
    if (purged > 0) this.log.info("tombstones purged", { purged });
    return purged;
  }

  private async collect(key: string): Promise<boolean> {
    const replicas = this.ring().preferenceList(key, this.options.n);
    const signal = AbortSignal.timeout(5_000);
    const replies = await Promise.all(
      replicas.map((node) =>
        this.replicas
          .endpoint(node)
          .read(key, signal)
          .catch(() => undefined),
      ),
    );
    if (!isPurgeable(replies, replicas.length, this.now(), this.options.graceMs)) return false;
    const record = encodeSiblingSet(replies[0]!);
    const results = await Promise.all(replicas.map((node) => this.purge(node, key, record).catch(() => false)));
    const count = results.filter(Boolean).length;
    this.metrics.count("tombstones_purged", count);
    return count === replicas.length;
  }

  private async removeStrays(strays: ReadonlyArray<{ key: string; set: SiblingSet }>): Promise<number> {
    // The ring may have changed while the scan ran: then this group is left for a later sweep.
    if (!this.strayRemovalAllowed()) return 0;
    const removed = await Promise.all(
      strays.map(({ key, set }) =>
        this.strays!.remove(key, set).catch((err: unknown) => {
          this.log.warn("a key this node no longer owns could not be removed", { key, error: String(err) });
          return false;
        }),
      ),
    );
    return removed.filter(Boolean).length;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
