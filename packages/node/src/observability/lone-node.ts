// A node configured for replication (R or W above 1) that has no one to replicate with fails
// every request at the default quorum: say so loudly at start-up, and again every minute while
// too few members are up. Returns the timers, for the node to clear when it stops.
import type { Logger } from "./log.js";
import type { Readiness } from "./readiness.js";

export interface LoneNodeConfig {
  readonly nodeId: string;
  readonly advertise: string;
  readonly seeds: readonly string[];
  readonly peers: ReadonlyArray<{ id: string }>;
  readonly n: number;
  readonly r: number;
  readonly w: number;
  readonly gossipSuspicionMs: number;
}

export function warnWhileAlone(config: LoneNodeConfig, readiness: () => Readiness, log: Logger): NodeJS.Timeout[] {
  if (Math.max(config.r, config.w) <= 1) return [];
  const check = () => {
    const quorum = readiness().checks.find((c) => c.name === "quorum");
    if (quorum && !quorum.ok) log.warn(`NOT READY: ${quorum.detail}`, { n: config.n, r: config.r, w: config.w });
  };
  const hasOthers = config.seeds.some((a) => a !== config.advertise) || config.peers.some((p) => p.id !== config.nodeId);
  if (!hasOthers) {
    log.warn(
      `NOT READY: this node was started alone (no --seeds or --peers) with N=${config.n} R=${config.r} W=${config.w}: requests at the default quorum need ${Math.max(config.r, config.w)} nodes and will fail until other nodes join it (start them with --seeds ${config.advertise}), or run with --n 1 --r 1 --w 1`,
    );
  }
  // Then every minute while too few members are up (the first look once gossip has settled).
  const every = setInterval(check, 60_000);
  const first = setTimeout(check, 3 * config.gossipSuspicionMs);
  every.unref();
  first.unref();
  return [every, first];
}
