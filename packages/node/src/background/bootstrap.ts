// Bootstrap: a node that joins an existing cluster (ring status `joining`) is already a pending
// owner, so every new write of its future ranges reaches it; before it may own them it copies what
// the settled owners hold. For every range it gains (RingTransition.transfersTo: in the pending
// ring, and in the settled ring plus itself, since other joins may finish after it) it scans N - W + 1 of the range's settled replicas (any W replicas that acknowledged a
// write include one of them) with ReplicaService.Scan, merges every record causally into its own
// store, persists its position after each page (a restart resumes there), throttled to a byte
// rate; then it announces itself `normal`. See docs/membership.md.
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { rangeIntervals, type RangeTransfer, type RingTransition, type TokenRange } from "@dynamo-ts/ring";
import type { SiblingSet } from "@dynamo-ts/vclock";
import type { ScanPage, ScanPosition } from "../requests/export.js";
import type { Logger } from "../observability/log.js";
import type { Metrics } from "../observability/metrics.js";

export interface BootstrapDeps {
  readonly self: string;
  readonly n: number;
  readonly w: number;
  /** The settled and pending rings as they are now. */
  transition(): RingTransition;
  /** Whether this node has heard from any other member yet (the rings are worth reading). */
  knowsCluster(): boolean;
  isAvailable(node: string): boolean;
  /** A page of `node`'s store: keys after `after` with a token up to `lastToken`. */
  scan(node: string, after: ScanPosition, lastToken: number, signal: AbortSignal): Promise<ScanPage>;
  /** Merges a record into this node's store (the causal merge every replica write uses). */
  apply(key: string, set: SiblingSet): Promise<void>;
  /** Announces this node `normal`: it owns its ranges from now on. */
  becomeNormal(): void;
  /** Where the progress of each (range, source) is kept. */
  readonly progressFile: string;
  /** Throttle of the records' bytes copied per second, all sources together. */
  readonly bytesPerSecond: number;
  /** How long to let gossip spread `joining` before reading sources (writes made before every coordinator knew it go to the sources only). */
  readonly announceDelayMs: number;
  readonly log: Logger;
  readonly metrics: Metrics;
}

/** One (range, source) copy, as `dynamo status` shows it. */
export interface TransferProgress {
  readonly range: TokenRange;
  readonly source: string;
  readonly target: string;
  keys: number;
  bytes: number;
  readonly startedAt: number;
  done: boolean;
}

interface PersistedPosition {
  /** Index into the range's intervals (rangeIntervals). */
  interval: number;
  token: number;
  key: string;
  done: boolean;
  keys: number;
  bytes: number;
}

const RETRY_MS = 1_000;

export class Bootstrap {
  private readonly progress = new Map<string, PersistedPosition>();
  private readonly inFlight = new Map<string, TransferProgress>();
  private copiedBytes = 0;
  private throttleStartedAt = 0;

  constructor(private readonly deps: BootstrapDeps) {
    for (const [key, value] of Object.entries(readProgress(deps.progressFile))) this.progress.set(key, value);
    if (this.progress.size > 0) {
      deps.log.info("bootstrap: resuming from the progress of an earlier start", {
        copies: this.progress.size,
        done: [...this.progress.values()].filter((p) => p.done).length,
        keys: [...this.progress.values()].reduce((sum, p) => sum + p.keys, 0),
      });
    }
  }

  /** The copies in progress (and finished ones of this bootstrap). */
  transfers(): TransferProgress[] {
    return [...this.inFlight.values()];
  }

  async run(signal: AbortSignal): Promise<void> {
    const { deps } = this;
    while (!deps.knowsCluster()) await sleep(100, signal);
    if (deps.transition().settled.nodes.length === 0) {
      // No member owns anything yet: a brand-new cluster formed through seeds. Nothing to copy,
      // and waiting would leave the cluster without owners; every member started so does the same.
      deps.log.info("no member owns any range yet (a new cluster): normal without copying", {});
      deps.becomeNormal();
      rmSync(deps.progressFile, { force: true });
      return;
    }
    await sleep(deps.announceDelayMs, signal);
    this.throttleStartedAt = Date.now();
    for (;;) {
      signal.throwIfAborted();
      const transfers = deps.transition().transfersTo(deps.self, deps.n);
      const pendingWork = transfers.filter((t) => t.sources.length > 0 && this.sourcesFor(t).some((source) => !this.isDone(t, source)));
      if (pendingWork.length === 0) {
        deps.becomeNormal();
        const copies = [...this.progress.values()];
        rmSync(deps.progressFile, { force: true });
        // Logged last: tests and operators take this line as "normal, progress file gone".
        deps.log.info("bootstrap complete: every range this node gains is copied; now normal", {
          ranges: transfers.length,
          keys: copies.reduce((sum, p) => sum + p.keys, 0),
          bytes: copies.reduce((sum, p) => sum + p.bytes, 0),
        });
        return;
      }
      let failed = false;
      for (const transfer of pendingWork) {
        for (const source of this.sourcesFor(transfer)) {
          if (this.isDone(transfer, source)) continue;
          try {
            await this.copy(transfer, source, signal);
          } catch (err) {
            signal.throwIfAborted();
            failed = true;
            deps.metrics.count("bootstrap_copy_failures");
            deps.log.warn("bootstrap: copying a range failed; will retry", { range: transfer.range, source, error: String(err) });
          }
        }
      }
      if (failed) await sleep(RETRY_MS, signal);
    }
  }

  /**
   * The N - W + 1 sources to copy from: the available settled replicas first. Every write
   * acknowledged by W replicas is on at least one of any N - W + 1 of them.
   */
  private sourcesFor(transfer: RangeTransfer): string[] {
    const candidates = transfer.sources.filter((node) => node !== this.deps.self);
    const wanted = Math.min(candidates.length, Math.max(1, candidates.length - this.deps.w + 1));
    const done = candidates.filter((node) => this.isDone(transfer, node));
    const up = candidates.filter((node) => !done.includes(node) && this.deps.isAvailable(node));
    const down = candidates.filter((node) => !done.includes(node) && !up.includes(node));
    return [...done, ...up, ...down].slice(0, wanted);
  }

  private isDone(transfer: RangeTransfer, source: string): boolean {
    return this.progress.get(progressKey(transfer.range, source))?.done === true;
  }

  private async copy(transfer: RangeTransfer, source: string, signal: AbortSignal): Promise<void> {
    const { deps } = this;
    const key = progressKey(transfer.range, source);
    const position = this.progress.get(key) ?? { interval: 0, token: -1, key: "", done: false, keys: 0, bytes: 0 };
    const intervals = rangeIntervals(transfer.range);
    const shown: TransferProgress = this.inFlight.get(key) ?? {
      range: transfer.range,
      source,
      target: deps.self,
      keys: position.keys,
      bytes: position.bytes,
      startedAt: Date.now(),
      done: false,
    };
    this.inFlight.set(key, shown);
    while (position.interval < intervals.length) {
      const [low, high] = intervals[position.interval]!;
      // The empty key is before every key of a token: start at `low` itself.
      const after: ScanPosition = position.token < 0 ? { token: low, key: "" } : { token: position.token, key: position.key };
      const page = await deps.scan(source, after, high, signal);
      // A page's keys are distinct and the store's read-modify-writes are atomic: merge them together.
      await Promise.all(page.entries.map((entry) => deps.apply(entry.key, entry.record.set)));
      for (const entry of page.entries) {
        position.keys++;
        position.bytes += entry.record.encoded.length;
        this.copiedBytes += entry.record.encoded.length;
      }
      deps.metrics.count("bootstrap_keys_copied", page.entries.length);
      const last = page.entries.at(-1);
      if (last !== undefined) {
        position.token = last.token;
        position.key = last.key;
      }
      if (page.done) {
        position.interval++;
        position.token = -1;
        position.key = "";
      }
      shown.keys = position.keys;
      shown.bytes = position.bytes;
      this.progress.set(key, position);
      this.persist();
      await this.throttle(signal);
    }
    position.done = true;
    shown.done = true;
    this.persist();
  }

  private async throttle(signal: AbortSignal): Promise<void> {
    const dueAt = this.throttleStartedAt + (this.copiedBytes / this.deps.bytesPerSecond) * 1000;
    const wait = dueAt - Date.now();
    if (wait > 0) await sleep(wait, signal);
  }

  private persist(): void {
    const file = this.deps.progressFile;
    writeFileSync(file + ".tmp", JSON.stringify(Object.fromEntries(this.progress)));
    renameSync(file + ".tmp", file);
  }
}

function progressKey(range: TokenRange, source: string): string {
  return `${range.start}:${range.end}@${source}`;
}

function readProgress(file: string): Record<string, PersistedPosition> {
  try {
    const parsed = JSON.parse(readFileSync(file, "utf8")) as unknown;
    if (typeof parsed !== "object" || parsed === null) return {};
    const valid: Record<string, PersistedPosition> = {};
    for (const [key, value] of Object.entries(parsed as Record<string, Partial<PersistedPosition>>)) {
      if (
        Number.isSafeInteger(value.interval) &&
        Number.isSafeInteger(value.token) &&
        typeof value.key === "string" &&
        typeof value.done === "boolean" &&
        Number.isSafeInteger(value.keys) &&
        Number.isSafeInteger(value.bytes)
      ) {
        valid[key] = value as PersistedPosition;
      }
    }
    return valid;
  } catch {
    return {};
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
