// Exporting every key of the cluster (AdminService.Export): the node asked reads every member's
// store page by page, in storage order (token, then the key's UTF-8 bytes), and merges the
// versions of each key found on several members causally (`sync`), so a key that one replica
// lacks, or holds an older version of, is still exported whole. Members are read whether or not
// the key's range is theirs: a stale copy merges away like any replica's.
//
// Consistency: each key is a snapshot of that key as the members held it when their pages were
// read (a write acknowledged before the page that holds the key was read is in it), never a
// point-in-time snapshot of the whole cluster. A member that can't be read (down, rebuilding,
// failing) is left out; the export goes on as long as every range of the ring it covers still
// has R readable replicas (what a Get needs), and otherwise fails with Unavailable.
//
// Memory: at most two pages per member (the one being merged, the next one being fetched).
import { Code, ConnectError } from "@connectrpc/connect";
import { rangeIntervals, type Ring, TOKEN_SPACE, type TokenRange } from "@dynamo-ts/ring";
import { type SiblingSet, sync } from "@dynamo-ts/vclock";
import { describeError } from "./coordinator.js";
import { type VersionedRecord, versionedRecord } from "./replicas.js";

/** A position in storage order: after the key `key` of token `token`; the empty key is before every key of the token. */
export interface ScanPosition {
  readonly token: number;
  readonly key: string;
}

export interface ScannedRecord {
  readonly key: string;
  readonly token: number;
  readonly record: VersionedRecord;
}

/** Keys of one store after a position; `done` when none is left up to the page's last token. */
export interface ScanPage {
  readonly entries: readonly ScannedRecord[];
  readonly done: boolean;
}

export interface ExportDeps {
  /** The ring the walk reads (taken once, when it starts). */
  ring(): Ring;
  readonly n: number;
  readonly r: number;
  /** A page of `node`'s store (this node's own store for itself): keys after `after` with a token up to `lastToken`. */
  scan(node: string, after: ScanPosition, lastToken: number, signal: AbortSignal): Promise<ScanPage>;
  /** What this node makes of merged versions (last-write-wins resolution, or nothing). */
  resolve(set: SiblingSet): SiblingSet;
}

export interface ExportOptions {
  /** Only the keys whose token lies in it; the whole ring when undefined. */
  readonly range?: TokenRange | undefined;
  /** Only the keys after this position. */
  readonly after?: ScanPosition | undefined;
  /** The caller went away: stop. */
  readonly signal: AbortSignal;
}

/** UTF-8 byte order (the order of the stores' keys within a token), for well-formed strings. */
export function compareKeys(a: string, b: string): number {
  return a === b ? 0 : Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

export function comparePositions(a: ScanPosition, b: ScanPosition): number {
  return a.token - b.token || compareKeys(a.key, b.key);
}

/** One member's store, read a page ahead of the merge. */
class Source {
  private buffer: readonly ScannedRecord[] = [];
  private index = 0;
  private exhausted = false;
  private next: Promise<ScanPage> | undefined;

  constructor(
    readonly node: string,
    private position: ScanPosition,
    private readonly lastToken: number,
    private readonly fetch: (node: string, after: ScanPosition, lastToken: number) => Promise<ScanPage>,
  ) {}

  private request(): Promise<ScanPage> {
    const page = this.fetch(this.node, this.position, this.lastToken);
    page.catch(() => {}); // awaited by head(); not an unhandled rejection meanwhile
    return page;
  }

  /** The first record not taken yet (fetching as needed); undefined when the store has no more. */
  async head(): Promise<ScannedRecord | undefined> {
    while (this.index >= this.buffer.length) {
      if (this.exhausted) return undefined;
      const page = await (this.next ?? this.request());
      this.next = undefined;
      const last = page.entries.at(-1);
      if (last === undefined && !page.done) throw new Error(`${this.node} answered an empty page that is not the last`);
      if (last !== undefined && comparePositions(last, this.position) <= 0) throw new Error(`${this.node} answered keys out of order`);
      this.buffer = page.entries;
      this.index = 0;
      if (page.done) {
        this.exhausted = true;
      } else if (last !== undefined) {
        this.position = { token: last.token, key: last.key };
        this.next = this.request();
      }
    }
    return this.buffer[this.index];
  }

  take(): void {
    this.index++;
  }
}

export class ExportWalk {
  /** Members that could not be read, with why. */
  readonly unreadable = new Map<string, string>();
  private readonly ring: Ring;
  private readonly spans: Array<[number, number]>;
  private readonly stop = new AbortController();
  private readonly signal: AbortSignal;

  constructor(
    private readonly deps: ExportDeps,
    private readonly options: ExportOptions,
  ) {
    this.ring = deps.ring();
    this.spans = (options.range === undefined ? [[0, TOKEN_SPACE - 1] as [number, number]] : rangeIntervals(options.range)).sort((a, b) => a[0] - b[0]);
    this.signal = AbortSignal.any([options.signal, this.stop.signal]);
  }

  /** The merged records in storage order; Unavailable when some range has fewer than R readable replicas. */
  async *records(): AsyncGenerator<ScannedRecord> {
    const fetch = (node: string, after: ScanPosition, lastToken: number) => this.deps.scan(node, after, lastToken, this.signal);
    try {
      for (const [low, high] of this.spans) {
        const after = this.options.after;
        if (after !== undefined && after.token > high) continue;
        this.checkQuorum();
        const start = after !== undefined && after.token >= low ? after : { token: low, key: "" };
        let sources = this.ring.nodes.filter((node) => !this.unreadable.has(node)).map((node) => new Source(node, start, high, fetch));
        for (;;) {
          const heads = await Promise.all(sources.map((source) => this.headOf(source)));
          if (heads.some((head) => head === null)) {
            sources = sources.filter((_, i) => heads[i] !== null);
            this.checkQuorum();
            continue;
          }
          let first: ScannedRecord | undefined;
          for (const head of heads) if (head && (first === undefined || comparePositions(head, first) < 0)) first = head;
          if (first === undefined) break;
          const min = first;
          const copies: ScannedRecord[] = [];
          sources.forEach((source, i) => {
            const head = heads[i];
            if (head && comparePositions(head, min) === 0) {
              copies.push(head);
              source.take();
            }
          });
          yield { key: min.key, token: min.token, record: this.merge(copies) };
        }
      }
    } finally {
      this.stop.abort();
    }
  }

  /** A source's next record; null when it failed (it is then unreadable). */
  private async headOf(source: Source): Promise<ScannedRecord | undefined | null> {
    try {
      return await source.head();
    } catch (err) {
      if (this.signal.aborted) throw new ConnectError("the export was cancelled", Code.Canceled);
      this.unreadable.set(source.node, describeError(err));
      return null;
    }
  }

  /** The copies' causal merge; the copy itself when they all hold the same bytes. */
  private merge(copies: readonly ScannedRecord[]): VersionedRecord {
    const first = copies[0]!.record;
    const same = copies.every(({ record }) => Buffer.from(record.encoded.buffer, record.encoded.byteOffset, record.encoded.byteLength).equals(first.encoded));
    if (same) return first;
    let set = first.set;
    for (const copy of copies.slice(1)) set = sync(set, copy.record.set);
    return versionedRecord(this.deps.resolve(set));
  }

  /** Unavailable when a segment of the ring the export covers has fewer than R readable replicas. */
  private checkQuorum(): void {
    for (const segment of this.ring.segments()) {
      if (!rangeIntervals(segment).some(([low, high]) => this.spans.some(([a, b]) => low <= b && a <= high))) continue;
      const replicas = this.ring.preferenceListForToken(segment.end, this.deps.n);
      const readable = replicas.filter((node) => !this.unreadable.has(node));
      if (readable.length < this.deps.r) {
        const why = replicas.filter((node) => this.unreadable.has(node)).map((node) => `${node}: ${this.unreadable.get(node)}`);
        throw new ConnectError(
          `range (${segment.start}, ${segment.end}] has ${readable.length} readable replica(s) of ${replicas.length}, R=${this.deps.r} needed${why.length ? ` (${why.join("; ")})` : ""}`,
          Code.Unavailable,
        );
      }
    }
  }
}
