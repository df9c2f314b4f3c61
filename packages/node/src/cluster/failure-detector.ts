// Which peers are worth sending to right now. Fed by the outcome of this node's own RPCs
// (a refused connection or timeout marks a peer down; any answer marks it up) and, once
// membership gossip runs, by gossip's verdicts. Pure: time comes in as an argument.

export type PeerHealth = "up" | "down";

export interface FailureDetector {
  isAvailable(node: string): boolean;
  /** Called with a node id whenever a node is seen again after being down. */
  onUp(listener: (node: string) => void): void;
}

export interface RpcFailureDetectorOptions {
  /** A down peer gets one trial request after this long (half-open), so it can be seen again. */
  readonly retryAfterMs: number;
}

interface PeerRecord {
  health: PeerHealth;
  since: number;
  lastTrialAt: number;
  lastHeardAt: number | undefined;
  consecutiveFailures: number;
}

export class RpcFailureDetector implements FailureDetector {
  private readonly peers = new Map<string, PeerRecord>();
  private readonly upListeners: Array<(node: string) => void> = [];

  constructor(
    private readonly options: RpcFailureDetectorOptions,
    private readonly now: () => number,
  ) {}

  private record(node: string): PeerRecord {
    let rec = this.peers.get(node);
    if (!rec) {
      rec = { health: "up", since: this.now(), lastTrialAt: 0, lastHeardAt: undefined, consecutiveFailures: 0 };
      this.peers.set(node, rec);
    }
    return rec;
  }

  recordSuccess(node: string): void {
    const rec = this.record(node);
    const now = this.now();
    rec.lastHeardAt = now;
    rec.consecutiveFailures = 0;
    if (rec.health === "down") {
      rec.health = "up";
      rec.since = now;
      for (const listener of this.upListeners) listener(node);
    }
  }

  recordFailure(node: string): void {
    const rec = this.record(node);
    const now = this.now();
    rec.consecutiveFailures++;
    rec.lastTrialAt = now;
    if (rec.health === "up") {
      rec.health = "down";
      rec.since = now;
    }
  }

  /** Up peers always; a down peer once per retry interval, as a trial. */
  isAvailable(node: string): boolean {
    const rec = this.peers.get(node);
    if (!rec || rec.health === "up") return true;
    const now = this.now();
    if (now - rec.lastTrialAt >= this.options.retryAfterMs) {
      rec.lastTrialAt = now;
      return true;
    }
    return false;
  }

  health(node: string): PeerHealth {
    return this.peers.get(node)?.health ?? "up";
  }

  /** When the node was last marked down, if it is down now. */
  downSince(node: string): number | undefined {
    const rec = this.peers.get(node);
    return rec?.health === "down" ? rec.since : undefined;
  }

  lastHeardAt(node: string): number | undefined {
    return this.peers.get(node)?.lastHeardAt;
  }

  onUp(listener: (node: string) => void): void {
    this.upListeners.push(listener);
  }
}
