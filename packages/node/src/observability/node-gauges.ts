// The node's gauges: state that others own (membership, the ring, hints, anti-entropy, storage),
// read when Prometheus scrapes, so keeping them costs nothing between scrapes.
import type { Member } from "@dynamo-ts/gossip";
import type { Ring } from "@dynamo-ts/ring";
import type { StorageStats } from "@dynamo-ts/storage";
import type { Metrics } from "./metrics.js";

export interface GaugeSources {
  readonly nodeId: string;
  members(): readonly Member[];
  ring(): Ring;
  hintTargets(): ReadonlyArray<{ target: string; count: number; bytes: number }>;
  antiEntropyRanges(): ReadonlyArray<{ lastExchangeAgeMs: number; lastOutcome: string; keys: number }>;
  /** The listener's and peer links' counts (connections open, refused, sessions recycled…), by name. */
  connections(): Record<string, number>;
  storage(): StorageStats;
  /** 1 while the node serves requests. */
  serving(): boolean;
}

const STATES = ["alive", "suspect", "dead", "left"] as const;

export function registerNodeGauges(metrics: Metrics, src: GaugeSources): void {
  metrics.gauge("dynamo_members", "Cluster members by gossip state, as this node sees them", ["state"], () => {
    const members = src.members();
    return STATES.map((state) => [{ state }, members.filter((m) => m.state === state).length]);
  });
  metrics.gauge("dynamo_incarnation", "This node's gossip incarnation (it rises on restarts and refutations)", [], () => {
    const self = src.members().find((m) => m.id === src.nodeId);
    return self ? [[{}, self.incarnation]] : [];
  });
  metrics.gauge("dynamo_ring_ownership_ratio", "Share of the hash ring this node is the primary for (0..1)", [], () => [
    [{}, src.ring().ownership().get(src.nodeId) ?? 0],
  ]);
  metrics.gauge("dynamo_hints_pending", "Hints waiting for delivery, by target node", ["target"], () =>
    src.hintTargets().map((t) => [{ target: t.target }, t.count]),
  );
  metrics.gauge("dynamo_hints_pending_bytes", "Bytes of hints waiting for delivery, by target node", ["target"], () =>
    src.hintTargets().map((t) => [{ target: t.target }, t.bytes]),
  );
  metrics.gauge(
    "dynamo_anti_entropy_oldest_exchange_age_seconds",
    "Seconds since the range exchanged least recently last finished an exchange (ranges never exchanged are counted apart)",
    [],
    () => {
      const exchanged = src.antiEntropyRanges().filter((r) => r.lastOutcome !== "");
      return exchanged.length === 0 ? [] : [[{}, Math.max(...exchanged.map((r) => r.lastExchangeAgeMs)) / 1000]];
    },
  );
  metrics.gauge("dynamo_anti_entropy_ranges", "Ranges this node replicates, by whether anti-entropy has exchanged them since start", ["exchanged"], () => {
    const ranges = src.antiEntropyRanges();
    const exchanged = ranges.filter((r) => r.lastOutcome !== "").length;
    return [
      [{ exchanged: "true" }, exchanged],
      [{ exchanged: "false" }, ranges.length - exchanged],
    ];
  });
  metrics.gauge("dynamo_storage_write_batches", "Group-commit batches written since start (a counter, read from storage)", [], () => [
    [{}, src.storage().batches],
  ]);
  metrics.gauge("dynamo_storage_write_operations", "Puts and deletes written since start (a counter, read from storage)", [], () => [
    [{}, src.storage().operations],
  ]);
  metrics.gauge("dynamo_storage_pending_operations", "Writes waiting for the next group-commit batch", [], () => [[{}, src.storage().pendingOperations]]);
  metrics.gauge("dynamo_storage_keys", "Keys this node stores, tombstones included (from its anti-entropy trees)", [], () => [
    [{}, src.antiEntropyRanges().reduce((sum, r) => sum + r.keys, 0)],
  ]);
  metrics.gauge(
    "dynamo_connection_stats",
    "The listener's and the peer links' connection counts, by name (open connections, refusals, timeouts, recycled sessions)",
    ["stat"],
    () => Object.entries(src.connections()).map(([stat, value]) => [{ stat }, value]),
  );
  metrics.gauge("dynamo_serving", "1 while this node serves requests, 0 while it does not (starting, disk failing, draining)", [], () => [
    [{}, src.serving() ? 1 : 0],
  ]);
}
