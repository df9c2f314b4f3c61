import { decodeMessage, encodeMessage } from "./codec.js";
import type { SwimConfig } from "./config.js";
import { Swim } from "./swim.js";
import type { GossipMessage, Member, MembershipChange, Outgoing } from "./types.js";

/** mulberry32: a tiny, fast, seedable PRNG returning uniform numbers in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SimulationOptions {
  seed: number;
  /** Swim configuration for every node (defaults otherwise). */
  config?: Partial<SwimConfig>;
  /**
   * One-way latency of a message in ms. Default: every link gets a fixed base latency drawn once
   * in [1, 5) ms, plus per-message jitter in [0, 1) ms (so messages can be reordered).
   */
  latency?: (fromId: string, toId: string, random: () => number) => number;
  /** Probability that any one message is lost (default 0). */
  lossRate?: number;
  /** Send every message through encodeMessage/decodeMessage, as the real transport does (default true). */
  useCodec?: boolean;
}

export interface SimulationNodeOptions {
  /** Default `${id}.sim:7946`. */
  address?: string;
  incarnation?: number;
  /** Seed addresses to join through. */
  seeds?: readonly string[];
}

/** A membership change as observed by one node at a simulated time. */
export interface ObservedChange extends MembershipChange {
  readonly at: number;
  readonly observer: string;
}

export interface NetworkStats {
  sent: number;
  delivered: number;
  /** Lost to the loss rate. */
  lost: number;
  /** Dropped by a cut link (partition) or because the destination was down or unknown. */
  blocked: number;
  bytes: number;
}

interface SimNode {
  readonly id: string;
  readonly address: string;
  swim: Swim;
  running: boolean;
  seeds: readonly string[];
  /** Incarnation the node would have persisted; a restart defaults to this + 1. */
  lastIncarnation: number;
  tickGeneration: number;
  scheduledTickAt: number;
}

type SimEvent =
  | { readonly at: number; readonly order: number; readonly kind: "tick"; readonly node: SimNode; readonly generation: number }
  | {
      readonly at: number;
      readonly order: number;
      readonly kind: "deliver";
      readonly fromId: string;
      readonly fromAddress: string;
      readonly to: string;
      readonly payload: Uint8Array | GossipMessage;
    };

/** Binary min-heap ordered by (at, order): events at the same time run in scheduling order. */
class EventQueue {
  private readonly heap: SimEvent[] = [];

  get size(): number {
    return this.heap.length;
  }

  peek(): SimEvent | undefined {
    return this.heap[0];
  }

  push(event: SimEvent): void {
    const heap = this.heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i] as SimEvent, heap[parent] as SimEvent)) break;
      [heap[i], heap[parent]] = [heap[parent] as SimEvent, heap[i] as SimEvent];
      i = parent;
    }
  }

  pop(): SimEvent | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < heap.length && before(heap[left] as SimEvent, heap[smallest] as SimEvent)) smallest = left;
      if (right < heap.length && before(heap[right] as SimEvent, heap[smallest] as SimEvent)) smallest = right;
      if (smallest === i) break;
      [heap[i], heap[smallest]] = [heap[smallest] as SimEvent, heap[i] as SimEvent];
      i = smallest;
    }
    return top;
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.at < b.at || (a.at === b.at && a.order < b.order);
}

function linkKey(a: string, b: string): string {
  return a < b ? `${a}\u0000${b}` : `${b}\u0000${a}`;
}

/**
 * Deterministic discrete-event simulation of a cluster of Swim nodes: a fake clock, a priority
 * queue of message deliveries and tick deadlines, per-link latency, random message loss,
 * partitions (cut links), crashes and restarts. Everything is driven by one seeded PRNG, so a
 * run is exactly reproducible from its seed.
 */
export class Simulation {
  /** Simulated time in ms. */
  now = 0;
  readonly random: () => number;
  readonly history: ObservedChange[] = [];
  readonly network: NetworkStats = { sent: 0, delivered: 0, lost: 0, blocked: 0, bytes: 0 };
  lossRate: number;

  private readonly config: Partial<SwimConfig> | undefined;
  private readonly latency: (fromId: string, toId: string, random: () => number) => number;
  private readonly useCodec: boolean;
  private readonly nodes = new Map<string, SimNode>();
  private readonly byAddress = new Map<string, SimNode>();
  private readonly cutLinks = new Set<string>();
  private readonly queue = new EventQueue();
  private order = 0;

  constructor(options: SimulationOptions) {
    this.random = mulberry32(options.seed);
    this.config = options.config;
    this.lossRate = options.lossRate ?? 0;
    this.useCodec = options.useCodec ?? true;
    const baseLatency = new Map<string, number>();
    this.latency =
      options.latency ??
      ((fromId, toId, random) => {
        const key = linkKey(fromId, toId);
        let base = baseLatency.get(key);
        if (base === undefined) {
          base = 1 + 4 * random();
          baseLatency.set(key, base);
        }
        return base + random();
      });
  }

  /** Starts a node at the current simulated time and joins it through `seeds`, if any. */
  addNode(id: string, options: SimulationNodeOptions = {}): Swim {
    if (this.nodes.has(id)) throw new Error(`simulation already has a node "${id}"`);
    const address = options.address ?? `${id}.sim:7946`;
    if (this.byAddress.has(address)) throw new Error(`simulation already has a node at "${address}"`);
    const node: SimNode = {
      id,
      address,
      swim: this.createSwim(id, address, options.incarnation ?? 0),
      running: true,
      seeds: options.seeds ?? [],
      lastIncarnation: options.incarnation ?? 0,
      tickGeneration: 0,
      scheduledTickAt: Number.NaN,
    };
    this.nodes.set(id, node);
    this.byAddress.set(address, node);
    this.afterStep(node, node.swim.join(node.seeds, this.now));
    return node.swim;
  }

  /**
   * Adds `ids` as an already-formed cluster: every node starts with the full member list, as if a
   * push-pull with a complete view had just happened. Saves simulated minutes of joining in tests
   * that are about something else.
   */
  addCluster(ids: readonly string[]): void {
    for (const id of ids) this.addNode(id);
    const everyone = ids.map((id) => this.node(id).self);
    for (const id of ids) {
      const other = ids.find((o) => o !== id);
      if (other === undefined) continue;
      const from = this.node(other).self;
      const message: GossipMessage = {
        type: "sync-response",
        seq: 0,
        from: { id: from.id, address: from.address, incarnation: from.incarnation, ringStatus: from.ringStatus, ringVersion: from.ringVersion },
        updates: everyone.map((m) => ({
          id: m.id,
          address: m.address,
          state: m.state,
          incarnation: m.incarnation,
          ringStatus: m.ringStatus,
          ringVersion: m.ringVersion,
        })),
      };
      const node = this.entry(id);
      this.afterStep(node, node.swim.receive(from.address, message, this.now));
    }
  }

  addressOf(id: string): string {
    return this.entry(id).address;
  }

  /** The node's Swim instance (for a crashed node: its last one, frozen at the crash). */
  node(id: string): Swim {
    return this.entry(id).swim;
  }

  ids(): string[] {
    return [...this.nodes.keys()];
  }

  runningIds(): string[] {
    return [...this.nodes.values()].filter((n) => n.running).map((n) => n.id);
  }

  isRunning(id: string): boolean {
    return this.entry(id).running;
  }

  /** Stops a node abruptly: it neither sends nor receives until restarted. */
  crash(id: string): void {
    const node = this.entry(id);
    if (!node.running) return;
    node.running = false;
    node.lastIncarnation = node.swim.self.incarnation;
    node.tickGeneration++;
  }

  /**
   * Restarts a crashed node with a fresh Swim instance. Its incarnation defaults to the persisted
   * one + 1; it joins through `seeds` (default: the seeds it was added with).
   */
  restart(id: string, options: { incarnation?: number; seeds?: readonly string[] } = {}): Swim {
    const node = this.entry(id);
    if (node.running) throw new Error(`node "${id}" is running; crash it first`);
    const incarnation = options.incarnation ?? node.lastIncarnation + 1;
    node.swim = this.createSwim(id, node.address, incarnation);
    node.running = true;
    node.lastIncarnation = incarnation;
    if (options.seeds !== undefined) node.seeds = options.seeds;
    node.scheduledTickAt = Number.NaN;
    this.afterStep(node, node.swim.join(node.seeds, this.now));
    return node.swim;
  }

  leave(id: string): void {
    const node = this.entry(id);
    this.afterStep(node, node.swim.leave(this.now));
  }

  /** Cuts every link between nodes of different groups (nodes in no group keep their links). */
  partition(groups: readonly (readonly string[])[]): void {
    for (let i = 0; i < groups.length; i++) {
      for (let j = i + 1; j < groups.length; j++) {
        for (const a of groups[i] ?? []) for (const b of groups[j] ?? []) this.cut(a, b);
      }
    }
  }

  cut(a: string, b: string): void {
    this.cutLinks.add(linkKey(a, b));
  }

  restore(a: string, b: string): void {
    this.cutLinks.delete(linkKey(a, b));
  }

  /** Restores every cut link. */
  heal(): void {
    this.cutLinks.clear();
  }

  /** Delivers `message` to `toId` right now, as if sent by `fromId` (for crafting scenarios). */
  inject(fromId: string, toId: string, message: GossipMessage): void {
    const to = this.entry(toId);
    if (!to.running) return;
    const payload = this.useCodec ? decodeMessage(encodeMessage(message)) : message;
    this.afterStep(to, to.swim.receive(this.addressOf(fromId), payload, this.now));
  }

  /** What `observerId` currently believes about `subjectId`. */
  view(observerId: string, subjectId: string): Member | undefined {
    return this.entry(observerId).swim.member(subjectId);
  }

  /** True when every running node other than `subjectId` sees it in a state accepted by `accept`. */
  allRunningSee(subjectId: string, accept: (member: Member | undefined) => boolean): boolean {
    for (const node of this.nodes.values()) {
      if (!node.running || node.id === subjectId) continue;
      if (!accept(node.swim.member(subjectId))) return false;
    }
    return true;
  }

  /** True when every running node sees every node in `ids` (including itself) as alive. */
  allAlive(ids: readonly string[] = this.runningIds()): boolean {
    for (const node of this.nodes.values()) {
      if (!node.running) continue;
      for (const id of ids) {
        if (node.swim.member(id)?.state !== "alive") return false;
      }
    }
    return true;
  }

  /** Advances simulated time by `ms`, processing every event due in that window. */
  runFor(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      const next = this.queue.peek();
      if (next === undefined || next.at > end) break;
      this.step();
    }
    this.now = end;
  }

  /**
   * Runs until `done()` holds (checked every `checkEveryMs` of simulated time) or `maxMs` pass.
   * Returns the simulated ms it took, or undefined if the condition never held.
   */
  runUntil(done: () => boolean, maxMs: number, checkEveryMs = 10): number | undefined {
    const start = this.now;
    if (done()) return 0;
    while (this.now - start < maxMs) {
      this.runFor(Math.min(checkEveryMs, maxMs - (this.now - start)));
      if (done()) return this.now - start;
    }
    return undefined;
  }

  private step(): void {
    const event = this.queue.pop();
    if (event === undefined) return;
    this.now = Math.max(this.now, event.at);
    if (event.kind === "tick") {
      const node = event.node;
      if (!node.running || event.generation !== node.tickGeneration) return;
      node.scheduledTickAt = Number.NaN;
      this.afterStep(node, node.swim.tick(this.now), true);
      return;
    }
    const to = this.byAddress.get(event.to);
    if (to === undefined || !to.running || this.cutLinks.has(linkKey(event.fromId, to.id))) {
      this.network.blocked++;
      return;
    }
    this.network.delivered++;
    const message = event.payload instanceof Uint8Array ? decodeMessage(event.payload) : event.payload;
    this.afterStep(to, to.swim.receive(event.fromAddress, message, this.now));
  }

  /** Sends a node's output, records its membership changes and reschedules its next tick. */
  private afterStep(node: SimNode, outgoing: readonly Outgoing[], afterTick = false): void {
    for (const out of outgoing) this.send(node, out);
    for (const change of node.swim.drainChanges()) this.history.push({ ...change, at: this.now, observer: node.id });
    if (!node.running) return;
    const deadline = node.swim.nextDeadline();
    if (deadline === node.scheduledTickAt) return;
    // A tick must consume everything that was due, or the node would spin at one instant.
    if (afterTick && deadline <= this.now) {
      throw new Error(`node "${node.id}": nextDeadline ${deadline} is not after the tick at ${this.now}`);
    }
    node.scheduledTickAt = deadline;
    node.tickGeneration++;
    if (Number.isFinite(deadline)) {
      const at = Math.max(deadline, this.now);
      this.queue.push({ at, order: this.order++, kind: "tick", node, generation: node.tickGeneration });
    }
  }

  private send(from: SimNode, out: Outgoing): void {
    this.network.sent++;
    const payload = this.useCodec ? encodeMessage(out.message) : out.message;
    if (payload instanceof Uint8Array) this.network.bytes += payload.length;
    if (this.lossRate > 0 && this.random() < this.lossRate) {
      this.network.lost++;
      return;
    }
    const to = this.byAddress.get(out.to);
    if (to !== undefined && this.cutLinks.has(linkKey(from.id, to.id))) {
      this.network.blocked++;
      return;
    }
    const delay = this.latency(from.id, to?.id ?? out.to, this.random);
    this.queue.push({
      at: this.now + delay,
      order: this.order++,
      kind: "deliver",
      fromId: from.id,
      fromAddress: from.address,
      to: out.to,
      payload,
    });
  }

  private createSwim(id: string, address: string, incarnation: number): Swim {
    const random = mulberry32(Math.floor(this.random() * 4294967296));
    return new Swim({ id, address, incarnation, random, now: this.now, ...(this.config ? { config: this.config } : {}) });
  }

  private entry(id: string): SimNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`simulation has no node "${id}"`);
    return node;
  }
}
