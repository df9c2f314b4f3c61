// Range streaming: how ownership moves while the ring changes shape (docs/membership.md). One
// engine serves three drivers:
// - bootstrap: a joining node (already a pending owner, so every new write of its future ranges
//   reaches it) copies each range it gains into its own store, then announces itself `normal`;
// - decommission: a leaving node streams every range it holds to the nodes that gain it, then
//   announces itself `left` and stops;
// - removal: a node an operator asked to remove a dead member streams that member's ranges from
//   the surviving replicas to the nodes that gain them, then marks the member `removed`.
// For every (range, target) it reads N - W + 1 of the range's settled replicas (any W replicas
// that acknowledged a write include one of them) with ReplicaService.Scan, page by page, and
// merges each record causally into the target. It persists its position per (range, source,
// target) after each page, so a restart resumes there, and is throttled to a byte rate.
import { readFileSync, rmSync } from "node:fs";
import { writeFileAtomically } from "../util/atomic-file.js";
import { rangeIntervals, type RangeTransfer, type TokenRange } from "@dynamo-ts/ring";
import type { ScanPage, ScanPosition, ScannedRecord } from "../requests/export.js";
import type { Logger } from "../observability/log.js";
import type { Metrics } from "../observability/metrics.js";

export type TransferKind = "bootstrap" | "decommission" | "removal";

export interface RangeStreamerDeps {
  readonly kind: TransferKind;
  readonly w: number;
  /** The transfers this driver is responsible for, as the rings are now (recomputed every round). */
  plan(): RangeTransfer[];
  /** Which of a transfer's settled replicas may be read (a joiner is not one; a removed member is dead). */
  candidates(transfer: RangeTransfer): string[];
  /** Whether this node has heard from any other member yet (the rings are worth reading). */
  knowsCluster(): boolean;
  isAvailable(node: string): boolean;
  /** A page of `node`'s store: keys after `after` with a token up to `lastToken`. */
  scan(node: string, after: ScanPosition, lastToken: number, signal: AbortSignal): Promise<ScanPage>;
  /** Merges a page's records into `target`'s store (the causal merge every replica write uses). */
  apply(target: string, entries: readonly ScannedRecord[], signal: AbortSignal): Promise<void>;
  /** Every transfer is done: the ring change this driver was for may complete. */
  finish(summary: StreamSummary): Promise<void>;
  /** Checked once the cluster is known: true when there is nothing to wait for or copy (a brand-new cluster). */
  nothingToCopy?(): boolean;
  /** Why the driver must stop without finishing (a removed member came back), if it must. */
  abandonReason?(): string | undefined;
  /** Where the progress of each (range, source, target) is kept. */
  readonly progressFile: string;
  /** Throttle of the records' bytes copied per second, all sources together. */
  readonly bytesPerSecond: number;
  /** How long to let gossip spread the status change before reading sources (writes made before every coordinator knew it go to the old owners only). */
  readonly announceDelayMs: number;
  readonly log: Logger;
  readonly metrics: Metrics;
}

export interface StreamSummary {
  readonly ranges: number;
  readonly keys: number;
  readonly bytes: number;
}

/** One (range, source, target) copy, as `dynamo status` shows it. */
export interface TransferProgress {
  readonly kind: TransferKind;
  readonly range: TokenRange;
  readonly source: string;
  readonly target: string;
  keys: number;
  bytes: number;
  readonly startedAt: number;
  /** Share of the range's tokens scanned, 0..1. */
  fraction: number;
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

export class RangeStreamer {
  private readonly progress = new Map<string, PersistedPosition>();
  private readonly inFlight = new Map<string, TransferProgress>();
  private copiedBytes = 0;
  private throttleStartedAt = 0;

  constructor(private readonly deps: RangeStreamerDeps) {
    for (const [key, value] of Object.entries(readProgress(deps.progressFile))) this.progress.set(key, value);
    if (this.progress.size > 0) {
      deps.log.info(`${deps.kind}: resuming from the progress of an earlier start`, {
        copies: this.progress.size,
        done: [...this.progress.values()].filter((p) => p.done).length,
        keys: [...this.progress.values()].reduce((sum, p) => sum + p.keys, 0),
      });
    }
  }

  /** The copies in progress (and finished ones of this run). */
  transfers(): TransferProgress[] {
    return [...this.inFlight.values()];
  }

  /** Runs until every planned transfer is copied and `finish` has run, or the signal aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const { deps } = this;
    while (!deps.knowsCluster()) await sleep(100, signal);
    if (deps.nothingToCopy?.() === true) {
      await deps.finish({ ranges: 0, keys: 0, bytes: 0 });
      rmSync(deps.progressFile, { force: true });
      return;
    }
    await sleep(deps.announceDelayMs, signal);
    this.throttleStartedAt = Date.now();
    for (;;) {
      signal.throwIfAborted();
      const abandon = deps.abandonReason?.();
      if (abandon !== undefined) {
        deps.log.warn(`${deps.kind} abandoned: ${abandon}`, {});
        rmSync(deps.progressFile, { force: true });
        return;
      }
      const transfers = deps.plan();
      const pendingWork = transfers.filter((t) => this.sourcesFor(t).some((source) => !this.isDone(t, source)));
      if (pendingWork.length === 0) {
        const copies = [...this.progress.values()];
        const summary = { ranges: transfers.length, keys: copies.reduce((sum, p) => sum + p.keys, 0), bytes: copies.reduce((sum, p) => sum + p.bytes, 0) };
        await deps.finish(summary);
        rmSync(deps.progressFile, { force: true });
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
            deps.metrics.count(`${deps.kind}_copy_failures`);
            deps.log.warn(`${deps.kind}: copying a range failed; will retry`, { range: transfer.range, source, target: transfer.target, error: String(err) });
          }
        }
      }
      if (failed) await sleep(RETRY_MS, signal);
    }
  }

  /**
   * The sources to copy from: N - W + 1 of the range's settled replicas (every write acknowledged
   * by W replicas is on one of them), or every readable one when fewer remain; those done first,
   * then available ones.
   */
  private sourcesFor(transfer: RangeTransfer): string[] {
    const candidates = this.deps.candidates(transfer);
    const wanted = Math.min(candidates.length, Math.max(1, transfer.sources.length - this.deps.w + 1));
    const done = candidates.filter((node) => this.isDone(transfer, node));
    const up = candidates.filter((node) => !done.includes(node) && this.deps.isAvailable(node));
    const down = candidates.filter((node) => !done.includes(node) && !up.includes(node));
    return [...done, ...up, ...down].slice(0, wanted);
  }

  private isDone(transfer: RangeTransfer, source: string): boolean {
    return this.progress.get(progressKey(transfer, source))?.done === true;
  }

  private async copy(transfer: RangeTransfer, source: string, signal: AbortSignal): Promise<void> {
    const { deps } = this;
    const key = progressKey(transfer, source);
    const position = this.progress.get(key) ?? { interval: 0, token: -1, key: "", done: false, keys: 0, bytes: 0 };
    const intervals = rangeIntervals(transfer.range);
    const shown: TransferProgress = this.inFlight.get(key) ?? {
      kind: deps.kind,
      range: transfer.range,
      source,
      target: transfer.target,
      keys: position.keys,
      bytes: position.bytes,
      startedAt: Date.now(),
      fraction: scannedFraction(intervals, position),
      done: false,
    };
    this.inFlight.set(key, shown);
    while (position.interval < intervals.length) {
      signal.throwIfAborted();
      const [low, high] = intervals[position.interval]!;
      // The empty key is before every key of a token: start at `low` itself.
      const after: ScanPosition = position.token < 0 ? { token: low, key: "" } : { token: position.token, key: position.key };
      const page = await deps.scan(source, after, high, signal);
      await deps.apply(transfer.target, page.entries, signal);
      for (const entry of page.entries) {
        position.keys++;
        position.bytes += entry.record.encoded.length;
        this.copiedBytes += entry.record.encoded.length;
      }
      deps.metrics.count(`${deps.kind}_keys_copied`, page.entries.length);
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
      shown.fraction = scannedFraction(intervals, position);
      this.progress.set(key, position);
      this.persist();
      await this.throttle(signal);
    }
    position.done = true;
    shown.done = true;
    shown.fraction = 1;
    this.persist();
  }

  private async throttle(signal: AbortSignal): Promise<void> {
    const dueAt = this.throttleStartedAt + (this.copiedBytes / this.deps.bytesPerSecond) * 1000;
    const wait = dueAt - Date.now();
    if (wait > 0) await sleep(wait, signal);
  }

  private persist(): void {
    const file = this.deps.progressFile;
    writeFileAtomically(file, JSON.stringify(Object.fromEntries(this.progress)));
  }
}

function progressKey(transfer: RangeTransfer, source: string): string {
  return `${transfer.range.start}:${transfer.range.end}@${source}>${transfer.target}`;
}

/** Share of the tokens of `intervals` before `position`. */
function scannedFraction(intervals: ReadonlyArray<readonly [number, number]>, position: PersistedPosition): number {
  const total = intervals.reduce((sum, [low, high]) => sum + (high - low + 1), 0);
  let scanned = 0;
  for (let i = 0; i < Math.min(position.interval, intervals.length); i++) scanned += intervals[i]![1] - intervals[i]![0] + 1;
  const current = intervals[position.interval];
  if (current !== undefined && position.token >= current[0]) scanned += position.token - current[0];
  return total === 0 ? 1 : Math.min(1, scanned / total);
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

export function sleep(ms: number, signal: AbortSignal): Promise<void> {
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
