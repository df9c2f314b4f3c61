// Who drives each ownership change, and the checks an operator's request must pass
// (docs/membership.md):
// - a joining node bootstraps itself (copies the ranges it gains, then `normal`);
// - a leaving node decommissions itself (streams every range it holds to the nodes that gain it,
//   then `left`, then stops); `dynamo decommission` starts it, a restart resumes it;
// - a node asked to remove a dead member marks it `leaving` on its behalf, streams its ranges from
//   the surviving replicas to the gainers, then marks it `removed`; a restart resumes it.
// The streaming itself is background/range-streamer.ts.
import { readFileSync } from "node:fs";
import { writeFileAtomically } from "../util/atomic-file.js";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import type { RangeTransfer, RingTransition } from "@dynamo-ts/ring";
import type { Member, RingStatus } from "@dynamo-ts/gossip";
import { RangeStreamer, type RangeStreamerDeps, type StreamSummary, type TransferProgress } from "../background/range-streamer.js";
import type { Logger } from "../observability/log.js";
import type { Metrics } from "../observability/metrics.js";

/** What the drivers need of membership (cluster/membership.ts). */
export interface MembershipView {
  readonly transition: RingTransition;
  readonly ringStatus: RingStatus;
  setRingStatus(status: "normal" | "leaving" | "left"): void;
  markLeaving(id: string): string | undefined;
  removeMember(id: string): string | undefined;
  member(id: string): Member | undefined;
  members(): Member[];
}

export interface OwnershipChangesDeps {
  readonly self: string;
  readonly n: number;
  readonly w: number;
  readonly dataDir: string;
  readonly bytesPerSecond: number;
  readonly announceDelayMs: number;
  readonly membership: MembershipView;
  readonly streaming: Pick<RangeStreamerDeps, "isAvailable" | "scan" | "apply">;
  /** Gossips this node's departure, then stops it (the end of a decommission). */
  leaveAndStop(): Promise<void>;
  readonly log: Logger;
  readonly metrics: Metrics;
}

const REMOVALS_FILE = "removals.json";

export class OwnershipChanges {
  private readonly running = new Map<string, RangeStreamer>();
  /** Transfers of drivers that finished (or were abandoned) since this node started. */
  private readonly finished: TransferProgress[] = [];
  private readonly abort = new AbortController();

  constructor(private readonly deps: OwnershipChangesDeps) {}

  /** Resumes what this node was doing when it stopped: a bootstrap, a decommission, removals. */
  start(): void {
    const status = this.deps.membership.ringStatus;
    if (status === "joining") this.startBootstrap();
    if (status === "leaving") this.startDecommission();
    for (const id of this.persistedRemovals()) {
      if (this.deps.membership.member(id)?.ringStatus === "leaving") this.startRemoval(id);
      else this.forgetRemoval(id);
    }
  }

  stop(): void {
    this.abort.abort();
  }

  /** Every transfer this node drives, in flight or done. */
  transfers(): TransferProgress[] {
    return [...this.finished, ...[...this.running.values()].flatMap((streamer) => streamer.transfers())];
  }

  /** AdminService.Decommission on this node: refused with the reason, or started (idempotent). */
  decommission(): number {
    const { membership, self } = this.deps;
    const status = membership.ringStatus;
    if (status === "joining") throw new ConnectError(`${self} is still joining: wait until it is normal, then decommission it`, Code.FailedPrecondition);
    if (status !== "normal" && status !== "leaving") throw new ConnectError(`${self} is ${status}: nothing to decommission`, Code.FailedPrecondition);
    if (status === "normal") {
      this.assertOwnersRemainWithout(self, "decommissioning");
      membership.setRingStatus("leaving");
      this.deps.log.info("decommission: leaving; streaming every range this node holds to the nodes that gain it", {});
    }
    this.startDecommission();
    return this.handOffPlan(this.deps.self).length;
  }

  /** AdminService.RemoveNode: refused with the reason, or started (idempotent). */
  removeNode(id: string): number {
    const { membership, self } = this.deps;
    if (id === self) throw new ConnectError(`${self} cannot remove itself: decommission it instead`, Code.FailedPrecondition);
    const member = membership.member(id);
    if (member === undefined) throw new ConnectError(`no member with id ${JSON.stringify(id)}`, Code.NotFound);
    if (member.ringStatus === "removed") return 0;
    if (member.state === "alive" || member.state === "suspect")
      throw new ConnectError(`${id} is ${member.state}: only a dead member can be removed (decommission a live one)`, Code.FailedPrecondition);
    if (member.ringStatus !== "leaving") {
      this.assertOwnersRemainWithout(id, "removing");
      const refused = membership.markLeaving(id);
      if (refused !== undefined) throw new ConnectError(refused, Code.FailedPrecondition);
      this.deps.log.info("removal: streaming a dead member's ranges from the surviving replicas to the nodes that gain them", { member: id });
    }
    this.rememberRemoval(id);
    this.startRemoval(id);
    return this.handOffPlan(id).length;
  }

  /** FailedPrecondition when fewer than N owners would remain once `node` is gone. */
  private assertOwnersRemainWithout(node: string, verb: string): void {
    const { membership, n } = this.deps;
    const remaining = membership.transition.pending.nodes.filter((other) => other !== node);
    if (remaining.length < n)
      throw new ConnectError(
        `${verb} ${node} would leave ${remaining.length} owner(s) (${remaining.join(", ") || "none"}) for N=${n} replicas: add a node first`,
        Code.FailedPrecondition,
      );
  }

  private startBootstrap(): void {
    const { membership, self, n } = this.deps;
    this.launch("bootstrap", "bootstrap.json", {
      kind: "bootstrap",
      plan: () => membership.transition.transfersTo(self, n).filter((t) => t.sources.length > 0),
      candidates: (t) => t.sources.filter((node) => node !== self),
      // No member owns anything yet: a brand-new cluster formed through seeds. Waiting would leave
      // the cluster without owners; every member started so does the same.
      nothingToCopy: () => membership.transition.settled.nodes.length === 0,
      finish: async (summary) => {
        membership.setRingStatus("normal");
        // Logged last: tests and operators take this line as "normal, progress file gone".
        this.deps.log.info("bootstrap complete: every range this node gains is copied; now normal", { ...summary });
      },
    });
  }

  private startDecommission(): void {
    const { membership } = this.deps;
    this.launch("decommission", "decommission.json", {
      kind: "decommission",
      plan: () => this.handOffPlan(this.deps.self),
      candidates: (t) => [...t.sources],
      finish: async (summary) => {
        this.deps.log.info("decommission complete: every range this node held is on the nodes that gain it; leaving and stopping", { ...summary });
        membership.setRingStatus("left");
        await this.deps.leaveAndStop();
      },
    });
  }

  private startRemoval(id: string): void {
    const { membership } = this.deps;
    this.launch(`removal:${id}`, `removal-${id}.json`, {
      kind: "removal",
      plan: () => this.handOffPlan(id),
      candidates: (t) => t.sources.filter((node) => node !== id),
      abandonReason: () => {
        const member = membership.member(id);
        if (member === undefined || member.ringStatus === "removed") return `${id} is no longer a member`;
        if (member.state === "alive" || member.state === "suspect") return `${id} came back (${member.state}); decommission it instead`;
        if (member.ringStatus !== "leaving") return `${id} is ${member.ringStatus} again`;
        return undefined;
      },
      finish: async (summary) => {
        const refused = membership.removeMember(id);
        if (refused !== undefined) throw new Error(`could not mark ${id} removed: ${refused}`);
        this.deps.log.info("removal complete: the member's ranges are on the nodes that gain them; marked removed", { member: id, ...summary });
      },
    });
  }

  /** Ranges of a leaving node (this one, or a dead one being removed) that settled owners gain; joiners copy theirs themselves. */
  private handOffPlan(id: string): RangeTransfer[] {
    const { transition } = this.deps.membership;
    return transition.transfersFrom(id, this.deps.n).filter((t) => transition.settled.has(t.target));
  }

  private launch(
    name: string,
    file: string,
    driver: Pick<RangeStreamerDeps, "kind" | "plan" | "candidates" | "finish" | "nothingToCopy" | "abandonReason">,
  ): void {
    if (this.running.has(name) || this.abort.signal.aborted) return;
    const { deps } = this;
    const streamer = new RangeStreamer({
      ...driver,
      ...deps.streaming,
      w: deps.w,
      knowsCluster: () => deps.membership.members().some((m) => m.id !== deps.self && m.state === "alive"),
      progressFile: join(deps.dataDir, file),
      bytesPerSecond: deps.bytesPerSecond,
      announceDelayMs: deps.announceDelayMs,
      log: deps.log,
      metrics: deps.metrics,
    });
    this.running.set(name, streamer);
    streamer
      .run(this.abort.signal)
      .then(() => {
        if (driver.kind === "removal") this.forgetRemoval(name.slice("removal:".length));
      })
      .catch((err: unknown) => {
        if (!this.abort.signal.aborted) deps.log.error(`${driver.kind} stopped`, { error: String(err) });
      })
      .finally(() => {
        // Its transfers stay visible in Status until the node restarts.
        if (!this.abort.signal.aborted) this.finished.push(...streamer.transfers());
        this.running.delete(name);
      });
  }

  private persistedRemovals(): string[] {
    try {
      const parsed = JSON.parse(readFileSync(join(this.deps.dataDir, REMOVALS_FILE), "utf8")) as unknown;
      return Array.isArray(parsed) ? parsed.filter((id): id is string => typeof id === "string") : [];
    } catch {
      return [];
    }
  }

  private rememberRemoval(id: string): void {
    const ids = this.persistedRemovals();
    if (!ids.includes(id)) this.writeRemovals([...ids, id]);
  }

  private forgetRemoval(id: string): void {
    const ids = this.persistedRemovals();
    if (ids.includes(id)) this.writeRemovals(ids.filter((other) => other !== id));
  }

  private writeRemovals(ids: string[]): void {
    const file = join(this.deps.dataDir, REMOVALS_FILE);
    writeFileAtomically(file, JSON.stringify(ids));
  }
}

export type { StreamSummary, TransferProgress };
