// Membership: drives the SWIM state machine (@dynamo-ts/gossip) with real time, a timer and
// the GossipService RPC, and turns its verdicts into what the node uses: the ring (every
// member that has not left: dead members keep their ranges, served by fallbacks and hints),
// member addresses, availability, and "node is back" events for hinted handoff.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { decodeMessage, encodeMessage, type Member, type Outgoing, Swim, type SwimConfig } from "@dynamo-ts/gossip";
import { Ring } from "@dynamo-ts/ring";
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

export class Membership {
  readonly swim: Swim;
  private ringNow: Ring;
  private ringIds: string;
  private readonly addresses = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly ringListeners: Array<(ring: Ring) => void> = [];
  private readonly upListeners: Array<(node: string) => void> = [];
  private readonly membersFile: string;

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
    const incarnation = bumpIncarnation(join(options.dataDir, "incarnation"));
    this.swim = new Swim({ id: options.nodeId, address: options.address, incarnation, config: options.swim, random: Math.random, now: Date.now() });
    // The ring starts from what is known without the network: configured peers and the
    // members this node saw last time, so a restart does not begin with a ring of one.
    const known = new Map<string, string>([[options.nodeId, options.address]]);
    for (const m of [...this.readPersisted(), ...options.initialMembers]) if (!known.has(m.id)) known.set(m.id, m.address);
    for (const [id, address] of known) this.addresses.set(id, address);
    this.ringIds = [...known.keys()].sort().join(",");
    this.ringNow = new Ring(known.keys(), { vnodes: options.vnodes });
    this.swim.drainChanges();
  }

  get ring(): Ring {
    return this.ringNow;
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
    for (const { member, previous } of changes) {
      this.addresses.set(member.id, member.address);
      if (member.id === this.options.nodeId) continue;
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
    // Every node computes the same ring from the same membership: all members but those
    // that left. Known-but-not-yet-gossiped members (configured peers) stay until gossip
    // says they left.
    const ids = new Set(this.addresses.keys());
    for (const m of this.swim.members()) if (m.state === "left") ids.delete(m.id);
    const key = [...ids].sort().join(",");
    if (key !== this.ringIds) {
      this.ringIds = key;
      this.ringNow = new Ring(ids, { vnodes: this.options.vnodes });
      this.log.info("ring changed", { members: [...ids].sort() });
      this.persist();
      for (const l of this.ringListeners) l(this.ringNow);
    }
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
    const members = this.ringNow.nodes.map((id) => ({ id, address: this.addressOf(id) ?? "" })).filter((m) => m.address);
    try {
      writeFileSync(this.membersFile + ".tmp", JSON.stringify(members));
      renameSync(this.membersFile + ".tmp", this.membersFile);
    } catch (err) {
      this.log.warn("could not persist membership", { error: String(err) });
    }
  }
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
  writeFileSync(file + ".tmp", String(next));
  renameSync(file + ".tmp", file);
  return next;
}
