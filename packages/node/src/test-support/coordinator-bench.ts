// An in-process bench for the coordinator: the real Coordinator and Ring over fake replicas whose
// behaviour a test scripts (answer, fail, hang until the deadline, answer late) and a fake clock
// it advances. No process, socket or timer: every outcome is decided by the script, so sloppy
// quorum, coordinator-held hints, forwarding, deadlines and read repair are tested exactly.
import { Code, ConnectError } from "@connectrpc/connect";
import { Ring } from "@dynamo-ts/ring";
import { liveValues, type SiblingSet, sync } from "@dynamo-ts/vclock";
import { ContextSealer } from "../requests/context-seal.js";
import { Coordinator, type CoordinatorOptions, notCoordinatedError, type PutArgs } from "../requests/coordinator.js";
import { type ReplicaEndpoint, type VersionedRecord, versionedRecord } from "../requests/replicas.js";
import { type Clock, Deadline } from "../requests/deadline.js";
import type { Logger } from "../observability/log.js";
import { Metrics } from "../observability/metrics.js";

/** A clock that moves only when the test says so. */
export class FakeClock implements Clock {
  private time = 1_000_000;
  private timers: Array<{ at: number; fn: () => void; cancelled: boolean }> = [];

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): () => void {
    const timer = { at: this.time + ms, fn, cancelled: false };
    this.timers.push(timer);
    return () => (timer.cancelled = true);
  }

  /** Moves time forward, firing the timers that fall due, in order. */
  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      const due = this.timers.filter((t) => !t.cancelled && t.at <= until).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.time = due.at;
      due.cancelled = true;
      due.fn();
    }
    this.time = until;
    this.timers = this.timers.filter((t) => !t.cancelled);
  }
}

/** How a fake replica answers: at once, by failing, or not until released (or the deadline). */
export type Behaviour = "ok" | "down" | "hang";

export interface WriteSeen {
  readonly node: string;
  readonly key: string;
  readonly hintFor: string | undefined;
}

/** One fake node: its store, its hints, and how it answers. */
export class FakeReplica implements ReplicaEndpoint {
  readonly store = new Map<string, SiblingSet>();
  readonly hints = new Map<string, SiblingSet>();
  behaviour: Behaviour = "ok";
  private readonly held: Array<() => void> = [];

  constructor(
    readonly node: string,
    private readonly log: WriteSeen[],
  ) {}

  async write(key: string, { set }: VersionedRecord, hintFor: string | undefined, signal: AbortSignal): Promise<void> {
    await this.answer(signal);
    this.log.push({ node: this.node, key, hintFor });
    if (hintFor !== undefined && hintFor !== this.node) {
      const id = `${hintFor}\n${key}`;
      this.hints.set(id, sync(this.hints.get(id) ?? { clock: new Map(), siblings: [] }, set));
      return;
    }
    this.store.set(key, sync(this.store.get(key) ?? { clock: new Map(), siblings: [] }, set));
  }

  async read(key: string, signal: AbortSignal): Promise<SiblingSet | undefined> {
    await this.answer(signal);
    return this.store.get(key);
  }

  /** Lets the calls this replica holds go on (a slow replica that finally answers). */
  release(): void {
    for (const go of this.held.splice(0)) go();
  }

  private answer(signal: AbortSignal): Promise<void> {
    if (this.behaviour === "down") return Promise.reject(new ConnectError(`${this.node} is down`, Code.Unavailable));
    if (this.behaviour === "ok") return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(new ConnectError(`${this.node} did not answer before the deadline`, Code.DeadlineExceeded));
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      this.held.push(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      });
    });
  }
}

const silentLog: Logger = { debug() {}, info() {}, warn() {}, error() {} };

export interface BenchOptions {
  readonly nodes: readonly string[];
  /** The node that receives the client's request (coordinates it, or forwards it). */
  readonly self: string;
  readonly n?: number;
  readonly r?: number;
  readonly w?: number;
  readonly readRepair?: number;
}

export class CoordinatorBench {
  readonly clock = new FakeClock();
  readonly ring: Ring;
  readonly replicas = new Map<string, FakeReplica>();
  readonly writes: WriteSeen[] = [];
  readonly metrics = new Metrics();
  /** Nodes the failure detector believes down. */
  readonly believedDown = new Set<string>();
  /** Nodes that answer calls but whose own store can't write (they decline to coordinate). */
  readonly diskFailing = new Set<string>();
  readonly forwarded: Array<{ node: string; key: string }> = [];
  readonly coordinator: Coordinator;
  private readonly coordinators = new Map<string, Coordinator>();
  readonly options: CoordinatorOptions;

  constructor(readonly bench: BenchOptions) {
    this.ring = new Ring(bench.nodes, { vnodes: 64 });
    for (const node of bench.nodes) this.replicas.set(node, new FakeReplica(node, this.writes));
    const n = bench.n ?? 3;
    this.options = {
      nodeId: bench.self,
      n,
      r: bench.r ?? 2,
      w: bench.w ?? 2,
      maxKeyBytes: 256,
      maxValueBytes: 1024 * 1024,
      maxSiblings: 100,
      maxRecordBytes: 4 * 1024 * 1024,
      maxShippedRecordBytes: 8 * 1024 * 1024,
      resolution: "siblings",
      readRepair: bench.readRepair ?? 0,
    };
    this.coordinator = this.coordinatorOf(bench.self);
  }

  replica(node: string): FakeReplica {
    return this.replicas.get(node)!;
  }

  /** The coordinator of another node, sharing the same fake cluster (forwarded writes land there). */
  coordinatorOf(self: string): Coordinator {
    let coordinator = this.coordinators.get(self);
    if (coordinator) return coordinator;
    const local = this.replica(self);
    coordinator = new Coordinator({
      options: { ...this.options, nodeId: self },
      ring: () => this.ring,
      replicas: { endpoint: (node) => this.replica(node), isAvailable: (node) => node === self || !this.believedDown.has(node) },
      updateLocal: async (key, fn) => {
        if (local.behaviour === "down") throw new ConnectError(`${self} cannot write to its data store`, Code.Unavailable);
        const next = fn(local.store.get(key));
        local.store.set(key, next);
        return versionedRecord(next);
      },
      localWritable: () => local.behaviour !== "down" && !this.diskFailing.has(self),
      forwardWrite: async (node, args) => {
        this.forwarded.push({ node, key: args.key });
        if (this.replica(node).behaviour === "down") throw notCoordinatedError(`${node} is unreachable`);
        return this.coordinatorOf(node).write(args, true);
      },
      now: () => this.clock.now(),
      random: () => 0,
      metrics: this.metrics,
      sealer: new ContextSealer("bench-cluster-secret-0123456789"),
      log: silentLog,
    });
    this.coordinators.set(self, coordinator);
    return coordinator;
  }

  deadline(ms = 1_000): Deadline {
    return new Deadline(ms, undefined, this.clock);
  }

  put(key: string, value: string, options: { w?: number; context?: Uint8Array; deadlineMs?: number; contentType?: string } = {}): Promise<Uint8Array> {
    const args: PutArgs = {
      key,
      value: new TextEncoder().encode(value),
      contentType: options.contentType,
      context: options.context ?? new Uint8Array(),
      w: options.w,
      deadline: this.deadline(options.deadlineMs),
    };
    return this.coordinator.write(args, false);
  }

  /** A key whose preference list (for N) satisfies `predicate`. */
  keyWhere(predicate: (preferenceList: string[]) => boolean, prefix = "k"): string {
    for (let i = 0; ; i++) {
      const key = `${prefix}-${i}`;
      if (predicate(this.ring.preferenceList(key, this.options.n))) return key;
    }
  }

  valuesOn(node: string, key: string): string[] {
    const set = this.replica(node).store.get(key);
    return set
      ? liveValues(set)
          .map((v) => new TextDecoder().decode(v))
          .sort()
      : [];
  }
}

/** Lets promise callbacks run (the fake replicas answer in microtasks). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** The ConnectError a call fails with; throws when it succeeds. */
export async function failure(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("the call succeeded");
}
