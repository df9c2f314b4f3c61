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
  /** Keys looked at per sweep, so a sweep stays short. */
  readonly maxPerSweep: number;
}

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
    private readonly now: () => number = Date.now,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.sweep(), this.options.intervalMs);
    this.timer.unref();
  }

  /** One pass over local tombstones this node is the primary replica of; returns keys purged. */
  sweep(): Promise<number> {
    this.running ??= this.sweepOnce().finally(() => (this.running = undefined));
    return this.running;
  }

  private async sweepOnce(): Promise<number> {
    const { nodeId, n, graceMs } = this.options;
    const candidates: string[] = [];
    for await (const { key, set } of this.storage.scan()) {
      if (!isDeleted(set) || set.siblings.length === 0) continue;
      if (this.now() - Math.max(...set.siblings.map((s) => s.timestamp)) <= graceMs) continue;
      // One node per key does the work: its primary.
      if (this.ring().preferenceList(key, n)[0] !== nodeId) continue;
      candidates.push(key);
      if (candidates.length >= this.options.maxPerSweep) break;
    }
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

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
