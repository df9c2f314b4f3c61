import { BroadcastQueue } from "./broadcast-queue.js";
import { resolveSwimConfig, type SwimConfig } from "./config.js";
import { GossipConfigError } from "./errors.js";
import { ringSupersedes, supersedes } from "./precedence.js";
import {
  RING_STATUSES,
  type GossipMessage,
  type Member,
  type MemberState,
  type MembershipChange,
  type MemberUpdate,
  type Outgoing,
  type RingStatus,
  type SenderInfo,
} from "./types.js";
import { addressProblem, idProblem, incarnationProblem, MAX_SEQ, MAX_SYNC_MEMBERS, messageProblem } from "./validate.js";

export interface SwimOptions {
  id: string;
  /** The address other members use to reach this one. */
  address: string;
  /** Persist it and pass a higher one on every start, so this start's `alive` overrides an old `dead`. Default 0. */
  incarnation?: number;
  /** This member's persisted ring status and its version (see `setRingStatus`). Default normal, 0. */
  ringStatus?: RingStatus;
  ringVersion?: number;
  config?: Partial<SwimConfig>;
  /** Uniform random number in [0, 1): drives probe order, helper and sync-partner choice. */
  random: () => number;
  now: number;
}

/** Counters for observability (all but pendingBroadcasts only ever grow). */
export interface SwimStats {
  /** Probes (protocol periods with a target) started by this node. */
  probesStarted: number;
  messagesReceived: number;
  /** Messages that failed validation, or claimed to come from this member's own id. */
  messagesIgnored: number;
  pingsSent: number;
  pingReqsSent: number;
  acksSent: number;
  syncsSent: number;
  /** Members this node suspected because its own probe failed. */
  suspicionsRaised: number;
  /** Suspects this node declared dead because their suspicion timed out. */
  deathsDeclared: number;
  /** Times this node refuted a claim that it was suspect, dead or left. */
  refutations: number;
  /** Updates currently waiting to be piggybacked (a gauge, not a counter). */
  pendingBroadcasts: number;
}

interface MemberRecord {
  readonly id: string;
  address: string;
  state: MemberState;
  incarnation: number;
  ringStatus: RingStatus;
  ringVersion: number;
  lastHeardAt: number | undefined;
  stateChangedAt: number;
  /** When a suspect turns dead unless refuted first. */
  suspectDeadline: number | undefined;
}

interface Probe {
  readonly targetId: string;
  readonly targetAddress: string;
  readonly seq: number;
  readonly indirectAt: number;
  deadline: number;
  indirectSent: boolean;
  acked: boolean;
}

/** A ping this node sent on behalf of a ping-req; its ack is relayed to the requester. */
interface Relay {
  readonly requesterAddress: string;
  readonly requesterSeq: number;
  readonly expiresAt: number;
}

type UpdateSource = "gossip" | "sync";

const SEQ_SPACE = MAX_SEQ + 1;

function isActive(state: MemberState): boolean {
  return state === "alive" || state === "suspect";
}

/**
 * SWIM membership and failure detection as a deterministic state machine. It never reads a
 * clock, draws its own randomness or does I/O: the caller passes `now` and a `random` source,
 * delivers incoming messages to `receive`, calls `tick` at (or after) `nextDeadline()`, and sends
 * the returned Outgoing messages.
 */
export class Swim {
  private readonly config: SwimConfig;
  private readonly random: () => number;
  private readonly selfRecord: MemberRecord;
  private readonly table = new Map<string, MemberRecord>();
  private readonly broadcasts = new BroadcastQueue();
  private changes: MembershipChange[] = [];

  /** Shuffled round-robin probe order; members are probed in this order, then it is reshuffled. */
  private probeOrder: string[] = [];
  private probeIndex = 0;
  private probe: Probe | undefined;
  private nextProbeAt: number;
  private readonly relays = new Map<number, Relay>();
  private seq: number;

  private nextSyncAt: number;
  private seeds: string[] = [];
  private joinRetryAt: number | undefined;
  private joinBackoffMs: number;
  private hasLeft = false;

  private readonly counters: SwimStats = {
    probesStarted: 0,
    messagesReceived: 0,
    messagesIgnored: 0,
    pingsSent: 0,
    pingReqsSent: 0,
    acksSent: 0,
    syncsSent: 0,
    suspicionsRaised: 0,
    deathsDeclared: 0,
    refutations: 0,
    pendingBroadcasts: 0,
  };

  constructor(options: SwimOptions) {
    const problem =
      idProblem(options.id, "member id") ?? addressProblem(options.address, "member address") ?? incarnationProblem(options.incarnation ?? 0, "incarnation");
    if (problem !== undefined) throw new GossipConfigError(problem);
    if (options.ringStatus !== undefined && !RING_STATUSES.includes(options.ringStatus)) {
      throw new GossipConfigError(`ring status must be one of ${RING_STATUSES.join(", ")}`);
    }
    const ringVersionProblem = incarnationProblem(options.ringVersion ?? 0, "ring version");
    if (ringVersionProblem !== undefined) throw new GossipConfigError(ringVersionProblem);
    if (typeof options.random !== "function") throw new GossipConfigError("random must be a function returning [0, 1)");
    if (!Number.isFinite(options.now)) throw new GossipConfigError("now must be a finite number");
    this.config = resolveSwimConfig(options.config);
    this.random = options.random;
    const now = options.now;
    this.selfRecord = {
      id: options.id,
      address: options.address,
      state: "alive",
      incarnation: options.incarnation ?? 0,
      ringStatus: options.ringStatus ?? "normal",
      ringVersion: options.ringVersion ?? 0,
      lastHeardAt: undefined,
      stateChangedAt: now,
      suspectDeadline: undefined,
    };
    this.table.set(this.selfRecord.id, this.selfRecord);
    this.recordChange(this.selfRecord, undefined, undefined);
    // Random phases keep members that start together from probing and syncing in lockstep.
    this.nextProbeAt = now + Math.floor(this.randomBelow(this.config.protocolPeriodMs));
    this.nextSyncAt = now + this.config.syncIntervalMs / 2 + this.randomBelow(this.config.syncIntervalMs / 2);
    this.seq = Math.floor(this.randomBelow(SEQ_SPACE));
    this.joinBackoffMs = this.config.protocolPeriodMs;
  }

  get self(): Member {
    return snapshot(this.selfRecord);
  }

  stats(): SwimStats {
    return { ...this.counters, pendingBroadcasts: this.broadcasts.size };
  }

  members(): Member[] {
    return [...this.table.values()].map(snapshot).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  member(id: string): Member | undefined {
    const record = this.table.get(id);
    return record === undefined ? undefined : snapshot(record);
  }

  drainChanges(): MembershipChange[] {
    const drained = this.changes;
    this.changes = [];
    return drained;
  }

  /** Whether some member told this one that an operator removed it: it must stop and be wiped. */
  get removed(): boolean {
    return this.selfRecord.ringStatus === "removed";
  }

  /**
   * Changes this member's own ring status (joining → normal, normal → leaving, leaving → left, or
   * back when a transfer is abandoned) and gossips it with the next ring version. `removed` is not
   * something a member says about itself; a removed member cannot change its status.
   */
  setRingStatus(status: Exclude<RingStatus, "removed">, now: number): void {
    if (!RING_STATUSES.includes(status) || status === ("removed" as RingStatus))
      throw new GossipConfigError(`a member cannot set its own ring status to ${String(status)}`);
    const self = this.selfRecord;
    if (self.ringStatus === "removed") throw new GossipConfigError("this member was removed from the cluster");
    if (self.ringStatus === status) return;
    const previousRingStatus = self.ringStatus;
    self.ringStatus = status;
    self.ringVersion = Math.min(self.ringVersion + 1, Number.MAX_SAFE_INTEGER);
    self.stateChangedAt = now;
    this.recordChange(self, self.state, previousRingStatus);
    this.broadcasts.enqueue(toUpdate(self));
  }

  /**
   * An operator's removal of another member that is dead (or has left): its ring status becomes
   * `removed`, which no later update from that member can override. Returns the reason it was
   * refused, or undefined when done.
   */
  removeMember(id: string, now: number): string | undefined {
    const record = this.deadMember(id);
    if (typeof record === "string") return record;
    if (record.ringStatus !== "removed") this.setRingStatusFor(record, "removed", now);
    return undefined;
  }

  /**
   * The first step of an operator's removal of a dead member: its ring status becomes `leaving` on
   * its behalf, so the pending ring drops it and the nodes that gain its ranges get their writes
   * while the survivors stream the ranges to them (then `removeMember`). If the member comes back,
   * it outbids this with its own status. Returns the reason it was refused, or undefined when done.
   */
  markLeaving(id: string, now: number): string | undefined {
    const record = this.deadMember(id);
    if (typeof record === "string") return record;
    if (record.ringStatus === "removed") return `member ${id} is already removed`;
    if (record.ringStatus === "left") return `member ${id} has left the ring already`;
    if (record.ringStatus !== "leaving") this.setRingStatusFor(record, "leaving", now);
    return undefined;
  }

  /** Another member an operator may act on (dead or left), or why not. */
  private deadMember(id: string): MemberRecord | string {
    if (id === this.selfRecord.id) return "a member cannot remove itself (decommission it instead)";
    const record = this.table.get(id);
    if (record === undefined) return `no member with id ${JSON.stringify(id)}`;
    if (isActive(record.state)) return `member ${id} is ${record.state}: only a dead member can be removed (decommission a live one)`;
    return record;
  }

  /** Sets another member's ring status on an operator's behalf, at the next ring version, and gossips it. */
  private setRingStatusFor(record: MemberRecord, status: RingStatus, now: number): void {
    const previousRingStatus = record.ringStatus;
    record.ringStatus = status;
    record.ringVersion = Math.min(record.ringVersion + 1, Number.MAX_SAFE_INTEGER);
    record.stateChangedAt = now;
    this.recordChange(record, record.state, previousRingStatus);
    this.broadcasts.enqueue(toUpdate(record));
  }

  /** Starts joining through seed addresses (its own address is ignored); retried with backoff until a peer answers. */
  join(seeds: readonly string[], now: number): Outgoing[] {
    const unique = new Set<string>();
    for (const seed of seeds) {
      const problem = addressProblem(seed, "seed address");
      if (problem !== undefined) throw new GossipConfigError(problem);
      if (seed !== this.selfRecord.address) unique.add(seed);
    }
    this.seeds = [...unique];
    if (this.hasLeft || this.seeds.length === 0) return [];
    this.joinBackoffMs = this.config.protocolPeriodMs;
    this.joinRetryAt = now + this.joinBackoffMs;
    return this.seeds.map((seed) => this.syncRequest(seed));
  }

  /** Gossips a final `left` state for self (with a higher incarnation) and stops probing. */
  leave(now: number): Outgoing[] {
    if (this.hasLeft) return [];
    const previous = this.selfRecord.state;
    this.selfRecord.incarnation++;
    this.selfRecord.state = "left";
    this.selfRecord.stateChangedAt = now;
    this.hasLeft = true;
    this.probe = undefined;
    this.joinRetryAt = undefined;
    this.relays.clear();
    this.recordChange(this.selfRecord, previous, this.selfRecord.ringStatus);
    this.broadcasts.enqueue(toUpdate(this.selfRecord));
    // Nobody will probe a left member, so tell a few members directly; they spread it further.
    const peers = this.peers((r) => isActive(r.state));
    const fanout = Math.min(peers.length, Math.max(this.config.indirectChecks, Math.ceil(Math.log2(peers.length + 2))));
    return this.pickRandom(peers, fanout).map((peer) => this.ping(peer, this.nextSeq()));
  }

  /** Earliest time at which tick() has something to do; Infinity when nothing is scheduled. */
  nextDeadline(): number {
    if (this.hasLeft) return Number.POSITIVE_INFINITY;
    let deadline = this.nextSyncAt;
    if (this.probe === undefined) {
      deadline = Math.min(deadline, this.nextProbeAt);
    } else {
      deadline = Math.min(deadline, this.probe.deadline);
      if (!this.probe.acked && !this.probe.indirectSent) deadline = Math.min(deadline, this.probe.indirectAt);
    }
    if (this.joinRetryAt !== undefined) deadline = Math.min(deadline, this.joinRetryAt);
    for (const record of this.table.values()) {
      if (record.suspectDeadline !== undefined) deadline = Math.min(deadline, record.suspectDeadline);
    }
    return deadline;
  }

  tick(now: number): Outgoing[] {
    if (this.hasLeft) return [];
    const out: Outgoing[] = [];

    for (const record of this.table.values()) {
      if (record.suspectDeadline !== undefined && now >= record.suspectDeadline) {
        this.counters.deathsDeclared++;
        this.setState(record, "dead", record.incarnation, now);
      }
    }

    const probe = this.probe;
    if (probe !== undefined && !probe.acked && !probe.indirectSent && now >= probe.indirectAt) {
      out.push(...this.sendPingReqs(probe));
      // A late tick must not skip the indirect phase: give the helpers their share of the period.
      probe.deadline = Math.max(probe.deadline, now + this.config.protocolPeriodMs - this.config.pingTimeoutMs);
    } else if (probe !== undefined && now >= probe.deadline) {
      this.probe = undefined;
      if (!probe.acked) {
        const target = this.table.get(probe.targetId);
        if (target !== undefined && target.state === "alive") {
          this.counters.suspicionsRaised++;
          this.setState(target, "suspect", target.incarnation, now);
        }
      }
    }

    if (this.probe === undefined && now >= this.nextProbeAt) {
      out.push(...this.startProbe(now));
      this.nextProbeAt += this.config.protocolPeriodMs;
      if (this.nextProbeAt <= now) this.nextProbeAt = now + this.config.protocolPeriodMs;
    }

    for (const [seq, relay] of this.relays) {
      if (now >= relay.expiresAt) this.relays.delete(seq);
    }

    if (now >= this.nextSyncAt) {
      this.nextSyncAt = now + this.config.syncIntervalMs;
      const sync = this.startSync();
      if (sync !== undefined) out.push(sync);
    }

    if (this.joinRetryAt !== undefined && now >= this.joinRetryAt) {
      if (this.peers((r) => isActive(r.state)).length > 0) {
        this.joinRetryAt = undefined;
      } else {
        this.joinBackoffMs = Math.min(this.joinBackoffMs * 2, this.config.syncIntervalMs);
        this.joinRetryAt = now + this.joinBackoffMs;
        for (const seed of this.seeds) out.push(this.syncRequest(seed));
      }
    }
    return out;
  }

  receive(_fromAddress: string, message: GossipMessage, now: number): Outgoing[] {
    // The reply goes to the sender's advertised address (message.from.address), not the
    // transport-level one, which may be an ephemeral client port.
    if (messageProblem(message) !== undefined || message.from.id === this.selfRecord.id) {
      this.counters.messagesIgnored++;
      return [];
    }
    this.counters.messagesReceived++;
    const source: UpdateSource = message.type === "sync-request" || message.type === "sync-response" ? "sync" : "gossip";
    for (const update of message.updates) this.applyUpdate(update, source, now);
    // After the updates, so that a departing sender's own `left` (piggybacked) wins over the
    // `alive` its sender info implies, without a transient alive change in between.
    this.applySender(message.from, now);

    switch (message.type) {
      case "ping":
        // Someone pinging this address for a different id: it must not get an ack on that id's behalf.
        if (message.targetId !== this.selfRecord.id) return [];
        return [this.ack(message.from.address, message.from.id, message.seq)];
      case "ack":
        return this.handleAck(message.seq);
      case "ping-req": {
        if (message.target.id === this.selfRecord.id) return [this.ack(message.from.address, message.from.id, message.seq)];
        if (this.hasLeft) return [];
        const seq = this.nextSeq();
        this.relays.set(seq, {
          requesterAddress: message.from.address,
          requesterSeq: message.seq,
          expiresAt: now + this.config.protocolPeriodMs,
        });
        return [this.ping({ id: message.target.id, address: message.target.address }, seq)];
      }
      case "sync-request":
        this.counters.syncsSent++;
        return [
          {
            to: message.from.address,
            message: { type: "sync-response", seq: message.seq, from: this.senderInfo(), updates: this.fullState() },
          },
        ];
      case "sync-response":
        return [];
    }
  }

  private handleAck(seq: number): Outgoing[] {
    if (this.probe !== undefined && this.probe.seq === seq) {
      this.probe.acked = true;
      return [];
    }
    const relay = this.relays.get(seq);
    if (relay === undefined) return []; // late or unknown ack
    this.relays.delete(seq);
    return [this.ack(relay.requesterAddress, undefined, relay.requesterSeq)];
  }

  // --- probing -----------------------------------------------------------------------------

  private startProbe(now: number): Outgoing[] {
    const target = this.nextProbeTarget();
    if (target === undefined) return [];
    this.counters.probesStarted++;
    const seq = this.nextSeq();
    this.probe = {
      targetId: target.id,
      targetAddress: target.address,
      seq,
      indirectAt: now + this.config.pingTimeoutMs,
      deadline: now + this.config.protocolPeriodMs,
      indirectSent: false,
      acked: false,
    };
    return [this.ping(target, seq)];
  }

  private nextProbeTarget(): MemberRecord | undefined {
    for (let pass = 0; pass < 2; pass++) {
      while (this.probeIndex < this.probeOrder.length) {
        const id = this.probeOrder[this.probeIndex++] as string;
        const record = this.table.get(id);
        if (record !== undefined && record !== this.selfRecord && isActive(record.state)) return record;
      }
      this.probeOrder = this.shuffle(this.peers((r) => isActive(r.state)).map((r) => r.id));
      this.probeIndex = 0;
    }
    return undefined;
  }

  private sendPingReqs(probe: Probe): Outgoing[] {
    probe.indirectSent = true;
    const helpers = this.pickRandom(
      this.peers((r) => r.state === "alive" && r.id !== probe.targetId),
      this.config.indirectChecks,
    );
    this.counters.pingReqsSent += helpers.length;
    return helpers.map((helper) => ({
      to: helper.address,
      message: {
        type: "ping-req",
        seq: probe.seq,
        from: this.senderInfo(),
        target: { id: probe.targetId, address: probe.targetAddress },
        updates: this.piggyback(helper.id),
      },
    }));
  }

  private startSync(): Outgoing | undefined {
    // Dead members are candidates too: that is how the two sides of a healed partition find each other.
    const candidates = this.peers((r) => r.state !== "left");
    const partner = this.pickRandom(candidates, 1)[0];
    if (partner !== undefined) return this.syncRequest(partner.address);
    const seed = this.pickRandom(this.seeds, 1)[0];
    return seed === undefined ? undefined : this.syncRequest(seed);
  }

  // --- messages ----------------------------------------------------------------------------

  private ping(target: { id: string; address: string }, seq: number): Outgoing {
    this.counters.pingsSent++;
    return {
      to: target.address,
      message: { type: "ping", seq, from: this.senderInfo(), targetId: target.id, updates: this.piggyback(target.id) },
    };
  }

  private ack(to: string, recipientId: string | undefined, seq: number): Outgoing {
    this.counters.acksSent++;
    return { to, message: { type: "ack", seq, from: this.senderInfo(), updates: this.piggyback(recipientId) } };
  }

  private syncRequest(to: string): Outgoing {
    this.counters.syncsSent++;
    return { to, message: { type: "sync-request", seq: this.nextSeq(), from: this.senderInfo(), updates: this.fullState() } };
  }

  private senderInfo(): SenderInfo {
    const self = this.selfRecord;
    return { id: self.id, address: self.address, incarnation: self.incarnation, ringStatus: self.ringStatus, ringVersion: self.ringVersion };
  }

  /**
   * Updates to piggyback on a message to `recipientId`. If this node holds the recipient as
   * suspect/dead/left, that record goes first, so a wrongly suspected member learns of it (and
   * refutes) from the first message it receives; a member that has left always re-announces it.
   */
  private piggyback(recipientId: string | undefined): MemberUpdate[] {
    const max = this.config.maxPiggyback;
    const priority: MemberUpdate[] = [];
    const recipient = recipientId === undefined ? undefined : this.table.get(recipientId);
    if (recipient !== undefined && recipient !== this.selfRecord && (recipient.state !== "alive" || recipient.ringStatus === "removed")) {
      priority.push(toUpdate(recipient));
    }
    if (this.hasLeft && priority.length < max) priority.push(toUpdate(this.selfRecord));
    const skip = new Set(priority.map((u) => u.id));
    return [...priority, ...this.broadcasts.take(max - priority.length, this.retransmitLimit(), skip)];
  }

  private fullState(): MemberUpdate[] {
    const state = [toUpdate(this.selfRecord)];
    for (const record of this.table.values()) {
      if (state.length >= MAX_SYNC_MEMBERS) break;
      if (record !== this.selfRecord) state.push(toUpdate(record));
    }
    return state;
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) % SEQ_SPACE;
    return this.seq;
  }

  // --- merging -----------------------------------------------------------------------------

  /** A direct message is the sender's own word that it is alive at its incarnation. */
  private applySender(from: SenderInfo, now: number): void {
    this.applyUpdate(
      { id: from.id, address: from.address, state: "alive", incarnation: from.incarnation, ringStatus: from.ringStatus, ringVersion: from.ringVersion },
      "gossip",
      now,
    );
    const record = this.table.get(from.id);
    if (record !== undefined) record.lastHeardAt = now;
  }

  private applyUpdate(update: MemberUpdate, source: UpdateSource, now: number): void {
    if (update.id === this.selfRecord.id) {
      this.applyClaimAboutSelf(update);
      return;
    }
    const current = this.table.get(update.id);
    if (current === undefined) {
      const record: MemberRecord = {
        id: update.id,
        address: update.address,
        state: update.state,
        incarnation: update.incarnation,
        ringStatus: update.ringStatus,
        ringVersion: update.ringVersion,
        lastHeardAt: undefined,
        stateChangedAt: now,
        suspectDeadline: update.state === "suspect" ? now + this.suspicionTimeout() : undefined,
      };
      this.table.set(record.id, record);
      if (isActive(record.state)) this.addToProbeOrder(record.id);
      this.recordChange(record, undefined, undefined);
      this.broadcasts.enqueue(toUpdate(record));
      return;
    }
    // Liveness and ring status are two independent "keep the maximum" merges.
    const newerRing = ringSupersedes(update, current);
    const previousRingStatus = current.ringStatus;
    if (newerRing) {
      current.ringStatus = update.ringStatus;
      current.ringVersion = update.ringVersion;
    }
    let state = update.state;
    // Push-pull carries whole tables, which may be stale (the other side of a partition holds us
    // all dead). Treat a remote `dead` as `suspect` for a member we consider live, so the member
    // gets its chance to refute instead of being killed by an old view.
    if (source === "sync" && state === "dead" && isActive(current.state)) state = "suspect";
    if (!supersedes({ state, incarnation: update.incarnation }, current)) {
      if (newerRing) {
        if (previousRingStatus !== current.ringStatus) current.stateChangedAt = now;
        this.recordChange(current, current.state, previousRingStatus);
        this.broadcasts.enqueue(toUpdate(current));
      }
      return;
    }
    // An address can only change along with a new incarnation (a restart elsewhere).
    if (update.incarnation > current.incarnation) current.address = update.address;
    this.setState(current, state, update.incarnation, now, previousRingStatus);
  }

  private applyClaimAboutSelf(claim: MemberUpdate): void {
    this.applyRingClaimAboutSelf(claim);
    const self = this.selfRecord;
    // Someone holds a newer record of us (a claim from before a restart with too low an
    // incarnation, or one that we are suspect/dead/left): outbid it by one incarnation.
    const outdated = this.hasLeft
      ? claim.incarnation > self.incarnation
      : claim.state === "alive"
        ? claim.incarnation > self.incarnation
        : claim.incarnation >= self.incarnation;
    if (!outdated) return;
    if (!this.hasLeft) this.counters.refutations++;
    // Saturates: a claim at 2^53 - 1 (only a forged one: incarnations grow by one per restart)
    // must not push ours past what a message can carry, or nothing this member sends would encode.
    self.incarnation = Math.min(claim.incarnation + 1, Number.MAX_SAFE_INTEGER);
    this.recordChange(self, self.state, self.ringStatus);
    this.broadcasts.enqueue(toUpdate(self));
  }

  /**
   * A member is the authority on its own ring status, except for an operator's `removed`, which it
   * adopts (and then never leaves). A newer record of any other status (one this member gossiped
   * before a restart that lost it) is outbid with this member's current status at the next version.
   */
  private applyRingClaimAboutSelf(claim: MemberUpdate): void {
    const self = this.selfRecord;
    if (!ringSupersedes(claim, self)) return;
    const previousRingStatus = self.ringStatus;
    if (claim.ringStatus === "removed") {
      self.ringStatus = "removed";
      self.ringVersion = claim.ringVersion;
    } else {
      self.ringVersion = Math.min(claim.ringVersion + 1, Number.MAX_SAFE_INTEGER);
    }
    this.recordChange(self, self.state, previousRingStatus);
    this.broadcasts.enqueue(toUpdate(self));
  }

  private setState(record: MemberRecord, state: MemberState, incarnation: number, now: number, previousRingStatus = record.ringStatus): void {
    const previous = record.state;
    const wasActive = isActive(previous);
    const renewedSuspicion = state === "suspect" && (previous !== "suspect" || incarnation !== record.incarnation);
    record.state = state;
    record.incarnation = incarnation;
    if (previous !== state) record.stateChangedAt = now;
    if (state !== "suspect") record.suspectDeadline = undefined;
    else if (renewedSuspicion) record.suspectDeadline = now + this.suspicionTimeout();
    if (!wasActive && isActive(state)) this.addToProbeOrder(record.id);
    this.recordChange(record, previous, previousRingStatus);
    this.broadcasts.enqueue(toUpdate(record));
  }

  private recordChange(record: MemberRecord, previous: MemberState | undefined, previousRingStatus: RingStatus | undefined): void {
    this.changes.push({ member: snapshot(record), previous, previousRingStatus });
  }

  // --- helpers -----------------------------------------------------------------------------

  private activeCount(): number {
    let n = 0;
    for (const record of this.table.values()) if (isActive(record.state)) n++;
    return n;
  }

  /** Suspicion timeout scaled by log10(n) for clusters above 10 members (as memberlist does). */
  private suspicionTimeout(): number {
    return Math.round(this.config.suspicionTimeoutMs * Math.max(1, Math.log10(this.activeCount())));
  }

  /** retransmitMult * ceil(log2(n + 1)) with n the number of live members. */
  private retransmitLimit(): number {
    return this.config.retransmitMult * Math.max(1, Math.ceil(Math.log2(this.activeCount() + 1)));
  }

  private peers(filter: (record: MemberRecord) => boolean): MemberRecord[] {
    const result: MemberRecord[] = [];
    for (const record of this.table.values()) {
      if (record !== this.selfRecord && filter(record)) result.push(record);
    }
    return result;
  }

  private addToProbeOrder(id: string): void {
    // A newcomer goes at a random place in the rest of this round, so it is probed this round.
    const position = this.probeIndex + Math.floor(this.randomBelow(this.probeOrder.length - this.probeIndex + 1));
    this.probeOrder.splice(position, 0, id);
  }

  private randomBelow(bound: number): number {
    const r = this.random();
    // Guard against a caller's source returning exactly 1 (or garbage): stay inside [0, bound).
    const unit = Number.isFinite(r) && r >= 0 && r < 1 ? r : 0;
    return unit * bound;
  }

  private shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.randomBelow(i + 1));
      const tmp = items[i] as T;
      items[i] = items[j] as T;
      items[j] = tmp;
    }
    return items;
  }

  /** Up to `count` distinct items chosen uniformly at random (partial Fisher–Yates). */
  private pickRandom<T>(items: readonly T[], count: number): T[] {
    const pool = [...items];
    const n = Math.min(count, pool.length);
    for (let i = 0; i < n; i++) {
      const j = i + Math.floor(this.randomBelow(pool.length - i));
      const tmp = pool[i] as T;
      pool[i] = pool[j] as T;
      pool[j] = tmp;
    }
    return pool.slice(0, n);
  }
}

function toUpdate(record: MemberRecord): MemberUpdate {
  return {
    id: record.id,
    address: record.address,
    state: record.state,
    incarnation: record.incarnation,
    ringStatus: record.ringStatus,
    ringVersion: record.ringVersion,
  };
}

function snapshot(record: MemberRecord): Member {
  return {
    id: record.id,
    address: record.address,
    state: record.state,
    incarnation: record.incarnation,
    ringStatus: record.ringStatus,
    ringVersion: record.ringVersion,
    lastHeardAt: record.lastHeardAt,
    stateChangedAt: record.stateChangedAt,
  };
}
