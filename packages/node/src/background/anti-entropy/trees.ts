// Tree ownership: the Merkle tree of every range this node replicates, for the current ring, the
// set being built for a new ring, and the build itself (a scan of storage); every change to the
// local store reaches them. Initiator and responder read the trees; only this class replaces them.
import { MerkleTree } from "@dynamo-ts/merkle";
import { replicaRanges, type Ring, type TokenRange } from "@dynamo-ts/ring";
import type { ReplicaChange } from "../../local/replica.js";
import type { AntiEntropyDeps, AntiEntropyOptions } from "./options.js";
import { digestOfEncoded, treeDepthFor, versionDigest } from "./ranges.js";

/** A range's exchanges so far, as status reports them. */
export interface RangeStats {
  exchanges: number;
  keysRepaired: number;
  keysMoved: number;
  bytesMoved: number;
  lastAt: number | undefined;
  lastPeer: string;
  lastOutcome: string;
}

/** One range this node replicates: its replicas (sorted), its tree and its exchange totals. */
export interface RangeEntry {
  readonly range: TokenRange;
  readonly replicas: readonly string[];
  readonly tree: MerkleTree;
  readonly stats: RangeStats;
}

/** The trees for one ring, indexed by end token. */
export class RangeSet {
  private readonly byBounds: Map<string, RangeEntry>;

  constructor(
    readonly ring: Ring,
    /** Sorted by range end. */
    readonly entries: readonly RangeEntry[],
  ) {
    this.byBounds = new Map(entries.map((entry) => [boundsKey(entry.range), entry]));
  }

  exact(range: TokenRange): RangeEntry | undefined {
    return this.byBounds.get(boundsKey(range));
  }

  /** The range holding `token`, if this node replicates it. */
  find(token: number): RangeEntry | undefined {
    const { entries } = this;
    if (entries.length === 0) return undefined;
    // The range holding a token is the first one ending at or after it (wrapping to the first).
    let low = 0;
    let high = entries.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (entries[mid]!.range.end < token) low = mid + 1;
      else high = mid;
    }
    const entry = entries[low] ?? entries[0]!;
    return entry.tree.covers(token) ? entry : undefined;
  }
}

function boundsKey(range: TokenRange): string {
  return `${range.start}:${range.end}`;
}

function openedKey(peer: string, range: TokenRange): string {
  return `${peer}\n${boundsKey(range)}`;
}

/** A set of trees being built: changes seen meanwhile go to its trees and are not overwritten by the scan. */
interface PendingBuild {
  readonly set: RangeSet;
  /** Entries whose trees are new and must be filled from storage. */
  readonly toScan: readonly RangeEntry[];
  readonly touched: Set<string>;
}

/** The trees of this node's ranges: the built ones, the ones being built, and when peers last opened them. */
export class Trees {
  private current: RangeSet | undefined;
  private pending: PendingBuild | undefined;
  private building: Promise<RangeSet> | undefined;
  /** When each peer last opened each range with this node ("peer\nstart:end"); forgotten when the trees are rebuilt. */
  private readonly openedByPeer = new Map<string, number>();

  constructor(
    private readonly options: Pick<AntiEntropyOptions, "nodeId" | "n">,
    private readonly deps: Pick<AntiEntropyDeps, "ring" | "storage" | "metrics" | "log" | "now">,
    /** Ends a build in progress when anti-entropy stops. */
    private readonly stopping: AbortSignal,
  ) {
    this.pending = this.prepare(deps.ring());
  }

  /** Whether the trees of the latest ring seen are built. */
  get ready(): boolean {
    return this.current !== undefined && this.pending === undefined;
  }

  /** The built trees, sorted by range end (none before the first build ends). */
  get entries(): readonly RangeEntry[] {
    return this.current?.entries ?? [];
  }

  /** Adds a change of the local store to the trees (the current ones, and those being built). */
  onChange(change: ReplicaChange): void {
    try {
      const digest =
        change.after === undefined ? undefined : change.afterBytes !== undefined ? digestOfEncoded(change.afterBytes) : versionDigest(change.after);
      this.current?.find(change.token)?.tree.set(change.key, change.token, digest);
      const pending = this.pending;
      if (pending !== undefined) {
        pending.touched.add(change.key);
        pending.set.find(change.token)?.tree.set(change.key, change.token, digest);
      }
    } catch (err) {
      // The write itself succeeded; a tree that missed it only costs an extra exchange.
      this.deps.log.error("anti-entropy: a change could not be added to its tree", { key: change.key, error: String(err) });
    }
  }

  /** The trees of the current ring, built first if the ring changed. */
  ensure(): Promise<RangeSet> {
    if (this.building === undefined) {
      const run = this.buildTrees();
      this.building = run;
      const done = () => {
        if (this.building === run) this.building = undefined;
      };
      run.then(done, done);
    }
    return this.building;
  }

  /** Builds the trees of the current ring in the background, if it changed. */
  refresh(): void {
    void this.ensure().catch((err: unknown) => this.deps.log.error("anti-entropy: rebuilding the trees failed", { error: String(err) }));
  }

  /** The trees if they are built for the current ring; otherwise undefined, and they are being built. */
  builtForCurrentRing(): RangeSet | undefined {
    const current = this.current;
    if (current === undefined || this.pending !== undefined || current.ring !== this.deps.ring()) {
      this.refresh();
      return undefined;
    }
    return current;
  }

  /** Resolves once a build in progress has ended, however it ended. */
  async settled(): Promise<void> {
    await this.building?.catch(() => undefined);
  }

  /** Notes that `peer` opened `range` with this node now. */
  noteOpened(peer: string, range: TokenRange): void {
    this.openedByPeer.set(openedKey(peer, range), this.deps.now());
  }

  /** When `peer` last opened `range` with this node since the trees were last built. */
  lastOpened(peer: string, range: TokenRange): number | undefined {
    return this.openedByPeer.get(openedKey(peer, range));
  }

  /** The trees for `ring`: reused where the range and depth are unchanged, empty (to be scanned) elsewhere. */
  private prepare(ring: Ring): PendingBuild {
    const toScan: RangeEntry[] = [];
    const entries = replicaRanges(ring, this.options.nodeId, this.options.n).map(({ range, replicas }) => {
      const depth = treeDepthFor(range);
      const previous = this.current?.exact(range);
      if (previous !== undefined && previous.tree.depth === depth) return { ...previous, replicas };
      const entry: RangeEntry = {
        range,
        replicas,
        tree: new MerkleTree(range, { depth }),
        stats: { exchanges: 0, keysRepaired: 0, keysMoved: 0, bytesMoved: 0, lastAt: undefined, lastPeer: "", lastOutcome: "" },
      };
      toScan.push(entry);
      return entry;
    });
    return { set: new RangeSet(ring, entries), toScan, touched: new Set() };
  }

  private async buildTrees(): Promise<RangeSet> {
    for (;;) {
      const ring = this.deps.ring();
      if (this.current?.ring === ring && this.pending === undefined) return this.current;
      if (this.pending?.set.ring !== ring) this.pending = this.prepare(ring);
      const pending = this.pending;
      const started = this.deps.now();
      let keys = 0;
      for (const entry of pending.toScan) {
        for await (const { key, token, set } of this.deps.storage.scan(entry.range)) {
          if (this.stopping.aborted) throw new Error("anti-entropy stopped");
          // A key changed since the build began already has its newest digest.
          if (!pending.touched.has(key)) entry.tree.set(key, token, versionDigest(set));
          keys++;
        }
      }
      if (this.pending !== pending) continue; // the ring changed again meanwhile
      this.current = pending.set;
      this.pending = undefined;
      this.openedByPeer.clear();
      this.deps.metrics.count("anti_entropy_tree_builds");
      this.deps.log.info("anti-entropy trees ready", {
        ranges: pending.set.entries.length,
        rebuilt: pending.toScan.length,
        keysScanned: keys,
        ms: this.deps.now() - started,
      });
    }
  }
}
