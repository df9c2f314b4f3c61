// Whether this node's two LevelDB stores (data and hints) can take writes, and getting them back
// when they can't. A disk that fills up or goes read-only makes writes fail; LevelDB then must be
// closed and opened again before it is trusted with writes (storage and hintstore refuse writes
// until reopen()). While a store fails, the node is not ready: health answers NOT_SERVING,
// /healthz 503 with the reason, client writes through it are handed to another replica, and
// replica writes to it answer Unavailable (so coordinators use fallbacks and hints). Recovery
// reopens the store on a backoff schedule and logs each reason, so the node comes back by itself
// once space returns, or says exactly why it can't.
import { Code, ConnectError } from "@connectrpc/connect";
import { HintStoreFullError, HintStoreInputError, HintStoreOpenError, HintStoreWriteError } from "@dynamo-ts/hintstore";
import { StorageClosedError, StorageUnavailableError, StorageWriteError } from "@dynamo-ts/storage";
import type { Logger } from "../observability/log.js";
import type { Metrics } from "../observability/metrics.js";

export interface RecoverableStore {
  readonly name: "data" | "hints";
  /** Closes and opens the store again, proving it writable; rejects with the reason otherwise. */
  reopen(): Promise<void>;
  /** A write that proves the store writable now (detects a read-only disk before a write fails). */
  probe?(): Promise<void>;
}

export interface StoreHealthOptions {
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
  /** How often a healthy store is probed; 0: never. */
  readonly probeIntervalMs: number;
}

interface Failure {
  reason: string;
  since: number;
  attempts: number;
  timer: NodeJS.Timeout | undefined;
}

export class StoreHealth {
  private readonly failures = new Map<string, Failure>();
  private probeTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly stores: readonly RecoverableStore[],
    private readonly options: StoreHealthOptions,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    /** Called whenever readiness changes. */
    private readonly onChange: () => void,
    private readonly now: () => number = Date.now,
  ) {}

  get ready(): boolean {
    return this.failures.size === 0;
  }

  /** Whether the data store takes writes (a node that can't write can't issue versions). */
  get dataWritable(): boolean {
    return !this.failures.has("data");
  }

  /** Why the node is not ready, or undefined when it is. */
  get reason(): string | undefined {
    if (this.failures.size === 0) return undefined;
    return [...this.failures].map(([name, f]) => `the ${name} store is not writable since ${new Date(f.since).toISOString()}: ${f.reason}`).join("; ");
  }

  start(): void {
    if (this.options.probeIntervalMs <= 0) return;
    this.probeTimer = setInterval(() => void this.probeAll(), this.options.probeIntervalMs);
    this.probeTimer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.probeTimer);
    for (const failure of this.failures.values()) clearTimeout(failure.timer);
  }

  /** A write to `store` failed: the node is not ready until a reopen succeeds. */
  failed(store: RecoverableStore["name"], error: unknown): void {
    const reason = error instanceof Error ? error.message : String(error);
    const existing = this.failures.get(store);
    if (existing) {
      existing.reason = reason;
      return;
    }
    this.metrics.count(`store_failures_${store}`);
    this.log.error("a store is not writable: this node is not ready and tries to reopen it", { store, reason });
    this.failures.set(store, { reason, since: this.now(), attempts: 0, timer: undefined });
    this.onChange();
    this.scheduleRecovery(store);
  }

  private scheduleRecovery(name: RecoverableStore["name"]): void {
    const failure = this.failures.get(name);
    if (!failure || this.stopped) return;
    const delay = Math.min(this.options.retryMaxMs, this.options.retryBaseMs * 2 ** Math.min(failure.attempts, 20));
    failure.timer = setTimeout(() => void this.recover(name), delay);
    failure.timer.unref();
  }

  private async recover(name: RecoverableStore["name"]): Promise<void> {
    const failure = this.failures.get(name);
    const store = this.stores.find((s) => s.name === name);
    if (!failure || !store || this.stopped) return;
    failure.attempts++;
    try {
      await store.reopen();
    } catch (err) {
      failure.reason = err instanceof Error ? err.message : String(err);
      this.log.warn("reopening a failed store did not work yet; trying again", { store: name, attempt: failure.attempts, reason: failure.reason });
      this.scheduleRecovery(name);
      return;
    }
    this.failures.delete(name);
    this.metrics.count(`store_recoveries_${name}`);
    this.log.info("a failed store is writable again: this node is ready", { store: name, downMs: this.now() - failure.since, attempts: failure.attempts });
    this.onChange();
  }

  private async probeAll(): Promise<void> {
    for (const store of this.stores) {
      if (!store.probe || this.failures.has(store.name)) continue;
      try {
        await store.probe();
      } catch (err) {
        this.failed(store.name, err);
      }
    }
  }
}

/** A store failure as the answer a caller should see: the node can't write, try another. */
export function storeErrorToConnect(err: unknown, nodeId: string): unknown {
  if (err instanceof StorageWriteError || err instanceof StorageUnavailableError || err instanceof StorageClosedError) {
    return new ConnectError(`${nodeId} cannot write to its data store (${err.message})`, Code.Unavailable);
  }
  if (err instanceof HintStoreFullError) return new ConnectError(`${nodeId} keeps no more hints: ${err.message}`, Code.ResourceExhausted);
  if (err instanceof HintStoreInputError) return new ConnectError(`hint refused: ${err.message}`, Code.InvalidArgument);
  if (err instanceof HintStoreWriteError || err instanceof HintStoreOpenError) {
    return new ConnectError(`${nodeId} cannot write to its hint store (${err.message})`, Code.Unavailable);
  }
  return err;
}

/** Whether `err` says the hint store failed to write (as opposed to refusing one hint). */
export function isHintStoreFailure(err: unknown): boolean {
  return err instanceof HintStoreWriteError || err instanceof HintStoreOpenError;
}
