// Client load for the fault suites: a few writers, each looping over a small key set through
// the nodes in turn (any node coordinates), recording every write in the History with the
// values its context had seen. Choices are drawn from a seeded generator per writer; timing
// (and so the interleaving with faults) is what the run makes of it.
import type { History, WriteKind } from "./checker.js";
import { type Cluster, decodeValue, delay } from "./cluster.js";
import { firstLine } from "./environment.js";

export interface OperationMix {
  /** get, then put with the read's context (supersedes what the read returned). */
  readonly readModifyWrite: number;
  /** put without a context: a new sibling next to whatever is there. */
  readonly blindPut: number;
  /** get, then delete with the read's context (a blind put when the key is absent). */
  readonly delete: number;
}

export interface WorkloadOptions {
  readonly cluster: Cluster;
  readonly history: History;
  readonly keys: readonly string[];
  readonly writers: number;
  readonly mix?: OperationMix;
  readonly seed?: number;
  /** Prefix of every written value; values are `${prefix}.w${writer}.${sequence}`. */
  readonly valuePrefix?: string;
  /** Hard bound on the operations of each writer, so a run can never loop forever. */
  readonly maxOpsPerWriter?: number;
  /** Pause after a failed call, so a dead node is not hammered. */
  readonly backoffMs?: number;
}

export interface WorkloadStats {
  readonly attempted: number;
  readonly acknowledged: number;
  readonly failed: number;
  /** Reads (of read-modify-writes and deletes) that failed, so no write followed. */
  readonly failedReads: number;
  readonly byKind: Readonly<Record<WriteKind, number>>;
  /** A few distinct failure messages, for the report. */
  readonly sampleErrors: readonly string[];
}

export class WorkloadError extends Error {
  override name = "WorkloadError";
}

const DEFAULT_MIX: OperationMix = { readModifyWrite: 0.7, blindPut: 0.15, delete: 0.15 };

export class Workload {
  private stopping = false;
  private running: Promise<void>[] = [];
  private attempted = 0;
  private acknowledged = 0;
  private failed = 0;
  private failedReads = 0;
  private readonly byKind: Record<WriteKind, number> = { put: 0, delete: 0 };
  private readonly sampleErrors = new Set<string>();
  private readonly recentErrors: string[] = [];
  private readonly waiters = new Set<() => void>();
  private readonly mix: OperationMix;

  constructor(private readonly options: WorkloadOptions) {
    if (options.keys.length === 0) throw new WorkloadError("the workload needs at least one key");
    if (options.writers < 1) throw new WorkloadError("the workload needs at least one writer");
    this.mix = options.mix ?? DEFAULT_MIX;
    const total = this.mix.readModifyWrite + this.mix.blindPut + this.mix.delete;
    if (!(total > 0)) throw new WorkloadError("the operation mix must have a positive weight");
  }

  start(): this {
    if (this.running.length > 0) throw new WorkloadError("the workload is already running");
    for (let writer = 0; writer < this.options.writers; writer++) this.running.push(this.writerLoop(writer));
    return this;
  }

  /** Waits for every writer to finish its maxOpsPerWriter operations; returns the totals. */
  async finished(): Promise<WorkloadStats> {
    await Promise.all(this.running);
    return this.stats();
  }

  /** Stops the writers after their current operation and returns the totals. */
  async stop(): Promise<WorkloadStats> {
    this.stopping = true;
    await Promise.all(this.running);
    this.notify();
    return this.stats();
  }

  stats(): WorkloadStats {
    return {
      attempted: this.attempted,
      acknowledged: this.acknowledged,
      failed: this.failed,
      failedReads: this.failedReads,
      byKind: { ...this.byKind },
      sampleErrors: [...this.sampleErrors],
    };
  }

  /** Resolves once `count` more writes have been acknowledged; fails after `timeoutMs`. */
  async waitForAcknowledged(count: number, what: string, timeoutMs = 60_000): Promise<void> {
    const target = this.acknowledged + count;
    const deadline = Date.now() + timeoutMs;
    while (this.acknowledged < target) {
      if (this.stopping) throw new WorkloadError(`workload stopped before ${what}`);
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new WorkloadError(
          `writes stalled ${what}: ${count - (target - this.acknowledged)} of ${count} acknowledged in ${timeoutMs} ms ` +
            `(recent errors: ${this.recentErrors.join(" | ") || "none"})`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(remaining, 1000));
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.waiters.add(done);
      });
    }
  }

  private notify(): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiters) wake();
  }

  private async writerLoop(writer: number): Promise<void> {
    const { cluster, history, keys } = this.options;
    const random = mulberry32((this.options.seed ?? 1) * 1000 + writer);
    const maxOps = this.options.maxOpsPerWriter ?? 5000;
    const backoffMs = this.options.backoffMs ?? 50;
    const prefix = this.options.valuePrefix ?? "v";
    const total = this.mix.readModifyWrite + this.mix.blindPut + this.mix.delete;

    for (let sequence = 0; sequence < maxOps && !this.stopping; sequence++) {
      const key = keys[Math.floor(random() * keys.length)]!;
      const node = cluster.node((writer + sequence) % cluster.nodes.length);
      const pick = random() * total;
      const kind = pick < this.mix.readModifyWrite ? "rmw" : pick < this.mix.readModifyWrite + this.mix.blindPut ? "blind" : "delete";
      const value = `${prefix}.w${writer}.${sequence}`;

      let covers: string[] = [];
      let context: Uint8Array | undefined;
      if (kind !== "blind") {
        try {
          const read = await node.client.get(key);
          if (read !== null) {
            covers = read.values.map(decodeValue);
            context = read.context;
          }
        } catch (error) {
          this.failedReads++;
          this.noteError(node.id, "get", error);
          await delay(backoffMs);
          continue;
        }
      }

      const isDelete = kind === "delete" && context !== undefined;
      const startedAt = Date.now();
      let error: unknown;
      try {
        if (isDelete) await node.client.delete(key, { context });
        else await node.client.put(key, value, context !== undefined ? { context } : {});
      } catch (caught) {
        error = caught ?? new Error("unknown failure");
      }
      const acknowledged = error === undefined;
      history.record({
        kind: isDelete ? "delete" : "put",
        key,
        ...(isDelete ? {} : { value }),
        covers,
        acknowledged,
        node: node.id,
        startedAt,
        endedAt: Date.now(),
        ...(acknowledged ? {} : { error: firstLine(error) }),
      });
      this.attempted++;
      this.byKind[isDelete ? "delete" : "put"]++;
      if (acknowledged) {
        this.acknowledged++;
        this.notify();
      } else {
        this.failed++;
        this.noteError(node.id, isDelete ? "delete" : "put", error);
        await delay(backoffMs);
      }
    }
  }

  private noteError(node: string, what: string, error: unknown): void {
    const message = `${what} via ${node}: ${firstLine(error)}`;
    if (this.sampleErrors.size < 20) this.sampleErrors.add(message);
    this.recentErrors.push(message);
    if (this.recentErrors.length > 3) this.recentErrors.shift();
  }
}

/** Small seeded PRNG (Mulberry32): reproducible choices per writer. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` keys named after the suite, so a report line says where a key came from. */
export function keyNames(suite: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${suite}-key-${String(i).padStart(3, "0")}`);
}
