// Membership: drives the SWIM state machine (@dynamo-ts/gossip) with real time, a timer and
// the GossipService RPC, and turns its verdicts into what the node uses: two rings (settled:
// the owners reads and W/R use, every member that is normal or leaving, dead ones included:
// they keep their ranges, served by fallbacks and hints; pending: the ring once every join,
// decommission and removal completes, whose extra owners get writes too), member addresses,
// availability, and "node is back" events for hinted handoff. See docs/membership.md.
import { mkdirSync, readFileSync } from "node:fs";
import { writeFileAtomically } from "../util/atomic-file.js";
import { join } from "node:path";
import { decodeMessage, encodeMessage, type Member, type Outgoing, RING_STATUSES, type RingStatus, Swim, type SwimConfig } from "@dynamo-ts/gossip";
import { Ring, RingTransition } from "@dynamo-ts/ring";
import type { Logger } from "../observability/log.js";
import type { Metrics } from "../observability/metrics.js";

export interface MembershipOptions {
  readonly nodeId: string;
  readonly address: string;
  readonly dataDir: string;
  readonly vnodes: number;
  /** Members known from configuration (--peers): in the ring from the start. */
  readonly initialMembers: ReadonlyArray<{ id: string; address: string }>;
  /** Addresses to join through (--seeds, and the --peers addresses). */
  readonly seeds: readonly string[];
  readonly swim: Partial<SwimConfig>;
}

interface PersistedMember {
  id: string;
  address: string;
}

/** This node's own ring status as last set, in `ring-status.json`: it survives restarts. */
export interface PersistedRingStatus {
  readonly status: RingStatus;
  readonly version: number;
}

/** A member in the settled ring: its ranges are its own (reads and the W/R counts use them). */
export function isSettledOwner(status: RingStatus): boolean {
  return status === "normal" || status === "leaving";
}

/** A member in the pending ring: it will own ranges once every transfer in progress completes. */
export function isPendingOwner(status: RingStatus): boolean {
  return status === "normal" || status === "joining";
}

/**
 * The ring status a node starts with when its data dir holds none: `normal` for a member of the
 * initial cluster (started with --peers, or alone) and for a data dir that already knew members
 * (written before ring statuses existed); `joining` for a new node started with --seeds only,
 * which then streams its ranges before it owns them.
 */
export function initialRingStatus(options: { hasPeers: boolean; hasSeeds: boolean; knewMembers: boolean }): RingStatus {
  if (options.hasPeers || options.knewMembers || !options.hasSeeds) return "normal";
  return "joining";
}

/** The node's data dir belongs to a member the cluster removed. */
export class RemovedMemberError extends Error {}

export class Membership {
  readonly swim: Swim;
  private rings: RingShape;
  private readonly addresses = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly ringListeners: Array<(ring: Ring) => void> = [];
  private readonly upListeners: Array<(node: string) => void> = [];
  private readonly removedListeners: Array<() => void> = [];
  private readonly membersFile: string;
  private readonly ringStatusFile: string;

  constructor(
    private readonly options: MembershipOptions,
    /** Sends encoded gossip to an address; failures are normal (the member may be down). */
    private readonly send: (address: string, bytes: Uint8Array) => Promise<void>,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    mkdirSync(options.dataDir, { recursive: true });
    this.membersFile = join(options.dataDir, "members.json");
    // A restarted node comes back with a higher incarnation, so its fresh "alive" overrides
    // the "dead" the others hold for it.
    this.ringStatusFile = join(options.dataDir, "ring-status.json");
    const persistedMembers = this.readPersisted();
    const persistedStatus = readRingStatus(this.ringStatusFile);
    if (persistedStatus?.status === "removed") {
      throw new RemovedMemberError(
        `this data dir (${options.dataDir}) belongs to node ${options.nodeId}, which the cluster removed (dynamo remove-node); wipe the data dir to join again as a new node`,
      );
    }
    if (persistedStatus?.status === "left") {
      throw new RemovedMemberError(
        `this data dir (${options.dataDir}) belongs to node ${options.nodeId}, which was decommissioned (its ranges now live on other nodes); wipe the data dir to join again as a new node`,
      );
    }
    const ringStatus =
      persistedStatus?.status ??
      initialRingStatus({
        hasPeers: options.initialMembers.some((m) => m.id !== options.nodeId),
        hasSeeds: options.seeds.some((a) => a !== options.address),
        knewMembers: persistedMembers.some((m) => m.id !== options.nodeId),
      });
    const incarnation = bumpIncarnation(join(options.dataDir, "incarnation"));
    this.swim = new Swim({
      id: options.nodeId,
      address: options.address,
      incarnation,
      ringStatus,
      ringVersion: persistedStatus?.version ?? 0,
      config: options.swim,
      random: Math.random,
      now: Date.now(),
    });
    this.persistRingStatus();
    // The ring starts from what is known without the network: configured peers and the
    // members this node saw last time, so a restart does not begin with a ring of one.
    const known = new Map<string, string>([[options.nodeId, options.address]]);
    for (const m of [...persistedMembers, ...options.initialMembers]) if (!known.has(m.id)) known.set(m.id, m.address);
    for (const [id, address] of known) this.addresses.set(id, address);
    const { settled, pending } = this.ownerSets();
    this.rings = ringShape(ringKey(settled, pending), settled, pending, options.vnodes);
    this.swim.drainChanges();
  }

  /**
   * Since when (Date.now()) the ring has stayed as it is with no join, decommission or removal
   * in progress (the settled and pending rings are one); undefined while one is.
   */
  get settledSince(): number | undefined {
    return this.rings.settledSince;
  }

  /**
   * settledSince, while every other member of the ring is alive and this node has heard from
   * each of them directly since then (so its view of the ring is theirs, not one persisted
   * before a restart or kept through a partition); otherwise undefined.
   */
  get settledInTouchSince(): number | undefined {
    const since = this.rings.settledSince;
    if (since === undefined) return undefined;
    for (const id of this.rings.settled.nodes) {
      if (id === this.options.nodeId) continue;
      const member = this.swim.member(id);
      if (member?.state !== "alive" || member.lastHeardAt === undefined || member.lastHeardAt < since) return undefined;
    }
    return since;
  }

  /** The settled ring: the owners reads, W and R use. */

  get ring(): Ring {
    return this.rings.settled;
  }

  /** The ring once every join, decommission and removal in progress completes. */
  get pendingRing(): Ring {
    return this.rings.pending;
  }

  /** Settled and pending rings together: extra write owners, what a joining node copies. */
  get transition(): RingTransition {
    return this.rings.transition;
  }

  get ringStatus(): RingStatus {
    return this.swim.self.ringStatus;
  }

  /** Sets this node's ring status, persists it (before gossiping it), and recomputes the rings. */
  setRingStatus(status: Exclude<RingStatus, "removed">): void {
    const self = this.swim.self;
    if (self.ringStatus === status) return;
    writeRingStatus(this.ringStatusFile, { status, version: self.ringVersion + 1 });
    this.swim.setRingStatus(status, Date.now());
    this.log.info("ring status", { from: self.ringStatus, to: status });
    this.applyChanges();
  }

  /** An operator's removal of a dead member (see Swim.removeMember); the refusal reason, or undefined. */
  removeMember(id: string): string | undefined {
    const refused = this.swim.removeMember(id, Date.now());
    if (refused === undefined) this.applyChanges();
    return refused;
  }

  /** The first step of removing a dead member (see Swim.markLeaving); the refusal reason, or undefined. */
  markLeaving(id: string): string | undefined {
    const refused = this.swim.markLeaving(id, Date.now());
    if (refused === undefined) this.applyChanges();
    return refused;
  }

  /** A member as gossip knows it (undefined for self and unknown ids). */
  member(id: string): Member | undefined {
    return id === this.options.nodeId ? undefined : this.swim.member(id);
  }

  /** Called once when gossip says an operator removed this node. */
  onRemoved(listener: () => void): void {
    this.removedListeners.push(listener);
  }

  addressOf(node: string): string | undefined {
    return this.swim.member(node)?.address ?? this.addresses.get(node);
  }

  /** Gossip's view: worth sending to unless known dead or gone. */
  isReachable(node: string): boolean {
    const state = this.swim.member(node)?.state;
    return state === undefined || state === "alive" || state === "suspect";
  }

  /** When this node last heard from `node` directly (gossip), if ever. */
  lastHeardAt(node: string): number | undefined {
    return this.swim.member(node)?.lastHeardAt;
  }

  members(): Member[] {
    return this.swim.members();
  }

  onRingChange(listener: (ring: Ring) => void): void {
    this.ringListeners.push(listener);
  }

  onUp(listener: (node: string) => void): void {
    this.upListeners.push(listener);
  }

  start(): void {
    const seeds = [...new Set([...this.options.seeds, ...[...this.addresses.values()]])].filter((a) => a !== this.options.address);
    this.dispatch(this.swim.join(seeds, Date.now()));
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    const delay = Math.min(200, Math.max(5, this.swim.nextDeadline() - Date.now()));
    this.timer = setTimeout(() => {
      this.dispatch(this.swim.tick(Date.now()));
      this.schedule();
    }, delay);
    this.timer.unref();
  }

  /** A gossip message arrived over RPC. */
  receive(bytes: Uint8Array): void {
    let message;
    try {
      message = decodeMessage(bytes);
    } catch {
      this.metrics.count("gossip_messages_malformed");
      return;
    }
    this.metrics.count("gossip_messages_received");
    this.dispatch(this.swim.receive("", message, Date.now()));
  }

  private dispatch(out: Outgoing[]): void {
    for (const { to, message } of out) {
      let bytes: Uint8Array;
      try {
        bytes = encodeMessage(message);
      } catch (err) {
        // One message that can't be encoded must not stop gossip (this runs on a timer).
        this.metrics.count("gossip_encode_failures");
        this.log.error("a gossip message could not be encoded; not sent", { to, error: String(err) });
        continue;
      }
      this.metrics.count("gossip_messages_sent");
      this.send(to, bytes).catch(() => this.metrics.count("gossip_send_failures"));
    }
    this.applyChanges();
  }

  private applyChanges(): void {
    const changes = this.swim.drainChanges();
    if (changes.length === 0) return;
    for (const { member, previous, previousRingStatus } of changes) {
      this.addresses.set(member.id, member.address);
      if (previousRingStatus !== undefined && previousRingStatus !== member.ringStatus) {
        this.log.info("member ring status", { member: member.id, from: previousRingStatus, to: member.ringStatus });
      }
      if (member.id === this.options.nodeId) {
        if (member.ringStatus === "removed" && previousRingStatus !== "removed") {
          this.persistRingStatus();
          this.log.error("an operator removed this node from the cluster (dynamo remove-node); stopping. Wipe its data dir to join again as a new node");
          for (const l of this.removedListeners) l();
        }
        continue;
      }
      if (previous !== member.state) {
        // Failure-detector verdicts and recoveries, countable by Prometheus (dynamo_members_became_*_total).
        if (previous !== undefined) this.metrics.count(`members_became_${member.state}`);
        this.log.info("member state", {
          member: member.id,
          address: member.address,
          from: previous ?? "unknown",
          to: member.state,
          incarnation: member.incarnation,
        });
      }
      // Alive again, or alive at a new incarnation (it restarted): worth telling.
      if (member.state === "alive" && previous !== undefined) for (const l of this.upListeners) l(member.id);
    }
    const { settled, pending } = this.ownerSets();
    const key = ringKey(settled, pending);
    if (key !== this.rings.key) {
      this.rings = ringShape(key, settled, pending, this.options.vnodes);
      this.log.info("ring changed", { members: [...settled].sort(), pending: [...pending].sort() });
      this.persist();
      for (const l of this.ringListeners) l(this.rings.settled);
    }
  }

  /**
   * Every node computes the same rings from the same membership. Members that left (liveness)
   * are in neither; known-but-not-yet-gossiped members (configured peers) count as normal until
   * gossip says otherwise.
   */
  private ownerSets(): { settled: Set<string>; pending: Set<string> } {
    const settled = new Set<string>();
    const pending = new Set<string>();
    for (const id of this.addresses.keys()) {
      const m = this.swim.member(id);
      if (m?.state === "left") continue;
      const status = m?.ringStatus ?? "normal";
      if (isSettledOwner(status)) settled.add(id);
      if (isPendingOwner(status)) pending.add(id);
    }
    return { settled, pending };
  }

  private persistRingStatus(): void {
    const self = this.swim.self;
    writeRingStatus(this.ringStatusFile, { status: self.ringStatus, version: self.ringVersion });
  }

  /** Announces a graceful, final departure and keeps gossiping long enough for it to spread. */
  async leave(periods = 3): Promise<void> {
    this.dispatch(this.swim.leave(Date.now()));
    const until = Date.now() + periods * (this.options.swim.protocolPeriodMs ?? 1000);
    while (Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private readPersisted(): PersistedMember[] {
    try {
      const parsed = JSON.parse(readFileSync(this.membersFile, "utf8")) as unknown;
      if (!Array.isArray(parsed)) return [];
      return parsed.filter((m): m is PersistedMember => typeof m?.id === "string" && typeof m?.address === "string" && m.id.length > 0);
    } catch {
      return [];
    }
  }

  private persist(): void {
    const members = [...new Set([...this.rings.settled.nodes, ...this.rings.pending.nodes])]
      .map((id) => ({ id, address: this.addressOf(id) ?? "" }))
      .filter((m) => m.address);
    try {
      writeFileAtomically(this.membersFile, JSON.stringify(members));
    } catch (err) {
      this.log.warn("could not persist membership", { error: String(err) });
    }
  }
}

/** The rings made from one pair of owner sets, and since when that pair holds. */
interface RingShape {
  /** ringKey of the owner sets. */
  readonly key: string;
  /** Date.now() when the shape was taken, if the settled and pending owners are the same; undefined while a transfer is in progress. */
  readonly settledSince: number | undefined;
  readonly settled: Ring;
  readonly pending: Ring;
  readonly transition: RingTransition;
}

function ringShape(key: string, settled: ReadonlySet<string>, pending: ReadonlySet<string>, vnodes: number): RingShape {
  const settledRing = new Ring(settled, { vnodes });
  const pendingRing = new Ring(pending, { vnodes });
  return {
    key,
    settledSince: sameNodes(settled, pending) ? Date.now() : undefined,
    settled: settledRing,
    pending: pendingRing,
    transition: new RingTransition(settledRing, pendingRing),
  };
}

function sameNodes(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  return a.size === b.size && [...a].every((id) => b.has(id));
}

function ringKey(settled: ReadonlySet<string>, pending: ReadonlySet<string>): string {
  return `${[...settled].sort().join(",")}|${[...pending].sort().join(",")}`;
}

/** This node's persisted ring status; undefined when none was written (or it is unreadable). */
export function readRingStatus(file: string): PersistedRingStatus | undefined {
  try {
    const parsed = JSON.parse(readFileSync(file, "utf8")) as { status?: unknown; version?: unknown };
    if (!RING_STATUSES.includes(parsed.status as RingStatus)) return undefined;
    if (typeof parsed.version !== "number" || !Number.isSafeInteger(parsed.version) || parsed.version < 0) return undefined;
    return { status: parsed.status as RingStatus, version: parsed.version };
  } catch {
    return undefined;
  }
}

function writeRingStatus(file: string, status: PersistedRingStatus): void {
  writeFileAtomically(file, JSON.stringify(status));
}

/** Reads the last incarnation from `file`, writes and returns the next one. */
export function bumpIncarnation(file: string): number {
  let last = 0;
  try {
    last = Number.parseInt(readFileSync(file, "utf8").trim(), 10) || 0;
  } catch {
    // first start
  }
  const next = last + 1;
  writeFileAtomically(file, String(next));
  return next;
}
