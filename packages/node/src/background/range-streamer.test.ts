import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RangeTransfer } from "@dynamo-ts/ring";
import { emptySet, update } from "@dynamo-ts/vclock";
import { afterEach, describe, expect, it } from "vitest";
import { jsonLogger } from "../observability/log.js";
import { Metrics } from "../observability/metrics.js";
import type { ScanPage, ScanPosition, ScannedRecord } from "../requests/export.js";
import { versionedRecord } from "../requests/replicas.js";
import { RangeStreamer, type RangeStreamerDeps } from "./range-streamer.js";

const utf8 = new TextEncoder();
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** In-memory stores: node -> records sorted by (token, key), scanned in pages of `pageSize`. */
class Stores {
  readonly data = new Map<string, ScannedRecord[]>();
  scans: string[] = [];
  constructor(private readonly pageSize = 2) {}

  put(node: string, token: number, key: string, value = key): void {
    const records = this.data.get(node) ?? [];
    records.push({ key, token, record: versionedRecord(update(emptySet(), new Map(), node, utf8.encode(value), 1_000)) });
    records.sort((a, b) => a.token - b.token || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    this.data.set(node, records);
  }

  keys(node: string): string[] {
    return (this.data.get(node) ?? []).map((r) => r.key).sort();
  }

  scan(node: string, after: ScanPosition, lastToken: number): ScanPage {
    this.scans.push(node);
    const rest = (this.data.get(node) ?? []).filter((r) => (r.token > after.token || (r.token === after.token && r.key > after.key)) && r.token <= lastToken);
    return { entries: rest.slice(0, this.pageSize), done: rest.length <= this.pageSize };
  }

  apply(target: string, entries: readonly ScannedRecord[]): void {
    for (const entry of entries) if (!this.keys(target).includes(entry.key)) this.put(target, entry.token, entry.key);
  }
}

function streamer(stores: Stores, transfers: RangeTransfer[], overrides: Partial<RangeStreamerDeps> = {}) {
  const dir = mkdtempSync(join(tmpdir(), "range-streamer-"));
  dirs.push(dir);
  const finished: Array<{ keys: number }> = [];
  const deps: RangeStreamerDeps = {
    kind: "decommission",
    w: 2,
    plan: () => transfers,
    candidates: (t) => [...t.sources],
    knowsCluster: () => true,
    isAvailable: () => true,
    scan: async (node, after, lastToken) => stores.scan(node, after, lastToken),
    apply: async (target, entries) => stores.apply(target, entries),
    finish: async (summary) => {
      finished.push(summary);
    },
    progressFile: join(dir, "progress.json"),
    bytesPerSecond: 1e12,
    announceDelayMs: 0,
    log: jsonLogger("test", () => {}, "silent"),
    metrics: new Metrics(),
    ...overrides,
  };
  return { deps, finished, progressFile: deps.progressFile };
}

describe("RangeStreamer", () => {
  it("copies each transfer's range from N - W + 1 of its sources into the target, only keys within the range", async () => {
    const stores = new Stores();
    // Range (100, 200]: a and b hold different keys (each missed a write); c holds both.
    stores.put("a", 150, "k1");
    stores.put("b", 160, "k2");
    stores.put("c", 150, "k1");
    stores.put("c", 160, "k2");
    stores.put("a", 300, "outside");
    const transfers = [{ range: { start: 100, end: 200 }, target: "t", sources: ["a", "b", "c"] }];
    const { deps, finished } = streamer(stores, transfers);
    const run = new RangeStreamer(deps);
    await run.run(new AbortController().signal);
    // N = 3, W = 2: two sources are read (a and b), and together they hold every acknowledged write.
    expect(new Set(stores.scans)).toEqual(new Set(["a", "b"]));
    expect(stores.keys("t")).toEqual(["k1", "k2"]);
    expect(finished).toEqual([{ ranges: 1, keys: 2, bytes: expect.any(Number) as number }]);
    expect(run.transfers().map((t) => [t.source, t.target, t.keys, t.done, t.fraction])).toEqual([
      ["a", "t", 1, true, 1],
      ["b", "t", 1, true, 1],
    ]);
  });

  it("prefers available sources and skips candidates the driver excludes (a removed member)", async () => {
    const stores = new Stores();
    stores.put("b", 150, "k1");
    stores.put("c", 150, "k1");
    const transfers = [{ range: { start: 100, end: 200 }, target: "t", sources: ["dead", "b", "c"] }];
    const { deps } = streamer(stores, transfers, { kind: "removal", candidates: (t) => t.sources.filter((n) => n !== "dead") });
    await new RangeStreamer(deps).run(new AbortController().signal);
    // Without the dead member, both survivors are read (N - W + 1 = 2 of them).
    expect(new Set(stores.scans)).toEqual(new Set(["b", "c"]));
    expect(stores.keys("t")).toEqual(["k1"]);
  });

  it("resumes after a stop from the progress it persisted, without reading finished pages again", async () => {
    const stores = new Stores(1);
    for (let i = 0; i < 6; i++) stores.put("a", 110 + i, `k${i}`);
    const transfers = [{ range: { start: 100, end: 200 }, target: "t", sources: ["a"] }];
    const abort = new AbortController();
    let pages = 0;
    const first = streamer(stores, transfers, {
      w: 1,
      apply: async (target, entries) => {
        stores.apply(target, entries);
        if (++pages === 3) abort.abort(new Error("killed"));
      },
    });
    await expect(new RangeStreamer(first.deps).run(abort.signal)).rejects.toThrow(/killed/);
    const saved = JSON.parse(readFileSync(first.progressFile, "utf8")) as Record<string, { keys: number; done: boolean }>;
    expect(Object.values(saved)).toEqual([expect.objectContaining({ keys: 3, done: false })]);
    stores.scans = [];
    const resumed = new RangeStreamer({ ...first.deps, apply: async (target, entries) => stores.apply(target, entries) });
    await resumed.run(new AbortController().signal);
    expect(stores.keys("t")).toEqual(["k0", "k1", "k2", "k3", "k4", "k5"]);
    // Pages after the third key only (k3, k4, k5, and the empty end).
    expect(stores.scans.length).toBeLessThanOrEqual(4);
    expect(first.finished).toEqual([{ ranges: 1, keys: 6, bytes: expect.any(Number) as number }]);
  });

  it("stops without finishing when the driver's reason to go on is gone", async () => {
    const stores = new Stores();
    stores.put("b", 150, "k1");
    const transfers = [{ range: { start: 100, end: 200 }, target: "t", sources: ["x", "b"] }];
    const { deps, finished } = streamer(stores, transfers, { kind: "removal", abandonReason: () => "x came back (alive)" });
    await new RangeStreamer(deps).run(new AbortController().signal);
    expect(finished).toEqual([]);
    expect(stores.keys("t")).toEqual([]);
  });

  it("a bootstrap with nothing to copy (a brand-new cluster) finishes at once", async () => {
    const { deps, finished } = streamer(new Stores(), [], { kind: "bootstrap", nothingToCopy: () => true, announceDelayMs: 60_000 });
    await new RangeStreamer(deps).run(new AbortController().signal);
    expect(finished).toEqual([{ ranges: 0, keys: 0, bytes: 0 }]);
  });
});
