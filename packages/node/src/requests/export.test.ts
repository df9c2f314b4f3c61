// The export walk over fake member stores: storage order, causal merging of the copies, resuming,
// ranges, members that fail, and the R rule.
import { Code, ConnectError } from "@connectrpc/connect";
import { hashKey, Ring } from "@dynamo-ts/ring";
import { emptySet, liveValues, type SiblingSet, sync, update } from "@dynamo-ts/vclock";
import { describe, expect, it } from "vitest";
import { comparePositions, type ExportDeps, type ExportOptions, ExportWalk, type ScanPage, type ScannedRecord, type ScanPosition } from "./export.js";
import { versionedRecord } from "./replicas.js";

const NODES = ["n1", "n2", "n3"];
const utf8 = new TextEncoder();
const text = (set: SiblingSet) =>
  liveValues(set)
    .map((v) => new TextDecoder().decode(v))
    .sort();

/** Member stores in memory, read in pages of `pageKeys`; a member in `failing` fails after `failAfterPages` pages. */
class FakeStores {
  readonly stores = new Map<string, Map<string, SiblingSet>>(NODES.map((node) => [node, new Map()]));
  readonly failing = new Map<string, number>();
  readonly pages = new Map<string, number>();

  constructor(private readonly pageKeys = 3) {}

  put(node: string, key: string, set: SiblingSet): void {
    const store = this.stores.get(node)!;
    store.set(key, sync(store.get(key) ?? emptySet(), set));
  }

  scan(node: string, after: ScanPosition, lastToken: number): Promise<ScanPage> {
    const pages = (this.pages.get(node) ?? 0) + 1;
    this.pages.set(node, pages);
    const failAfter = this.failing.get(node);
    if (failAfter !== undefined && pages > failAfter) return Promise.reject(new ConnectError(`${node} is down`, Code.Unavailable));
    const all: ScannedRecord[] = [...this.stores.get(node)!]
      .map(([key, set]) => ({ key, token: hashKey(key), record: versionedRecord(set) }))
      .filter((e) => comparePositions(e, after) > 0 && e.token <= lastToken)
      .sort(comparePositions);
    return Promise.resolve({ entries: all.slice(0, this.pageKeys), done: all.length <= this.pageKeys });
  }

  deps(r = 2): ExportDeps {
    return { ring: () => new Ring(NODES, { vnodes: 16 }), n: 3, r, scan: (node, after, lastToken) => this.scan(node, after, lastToken), resolve: (set) => set };
  }
}

function version(node: string, value: string | null, base: SiblingSet = emptySet()): SiblingSet {
  return update(base, base.clock, node, value === null ? null : utf8.encode(value), 1000);
}

async function collect(walk: ExportWalk): Promise<ScannedRecord[]> {
  const out: ScannedRecord[] = [];
  for await (const record of walk.records()) out.push(record);
  return out;
}

const options = (extra: Partial<ExportOptions> = {}): ExportOptions => ({ signal: new AbortController().signal, ...extra });

describe("ExportWalk", () => {
  it("exports every key any member holds once, in storage order, merging the members' copies causally", async () => {
    const stores = new FakeStores();
    const keys = Array.from({ length: 40 }, (_, i) => `key-${i}`);
    keys.forEach((key, i) => {
      const set = version("n1", `v${i}`);
      // Each key is missing on one member (i % 3); the others hold it.
      for (const [j, node] of NODES.entries()) if (j !== i % 3) stores.put(node, key, set);
    });
    // Concurrent versions on different members become siblings; a newer one replaces an older.
    const base = version("n1", "a");
    stores.put("n1", "conflict", sync(base, version("n2", "b")));
    stores.put("n2", "conflict", version("n3", "c"));
    stores.put("n1", "updated", base);
    stores.put("n3", "updated", version("n2", "newer", base));
    stores.put("n2", "deleted", version("n2", null, version("n1", "gone")));
    stores.put("n3", "deleted", version("n1", "gone"));

    const records = await collect(new ExportWalk(stores.deps(), options()));
    const byKey = new Map(records.map((r) => [r.key, r.record.set]));
    expect(records.map((r) => r.key)).toEqual([...byKey.keys()].sort((a, b) => comparePositions({ token: hashKey(a), key: a }, { token: hashKey(b), key: b })));
    expect(records).toHaveLength(43);
    keys.forEach((key, i) => expect(text(byKey.get(key)!)).toEqual([`v${i}`]));
    expect(text(byKey.get("conflict")!)).toEqual(["a", "b", "c"]);
    expect(text(byKey.get("updated")!)).toEqual(["newer"]);
    expect(text(byKey.get("deleted")!)).toEqual([]);
    expect(byKey.get("deleted")!.siblings).toHaveLength(1);
  });

  it("goes on after a position and within a range (wrapping too), exactly", async () => {
    const stores = new FakeStores(2);
    const keys = Array.from({ length: 60 }, (_, i) => `k${i}`);
    for (const key of keys) for (const node of NODES) stores.put(node, key, version("n1", key));
    const all = (await collect(new ExportWalk(stores.deps(), options()))).map((r) => r.key);
    expect(all).toHaveLength(60);
    const middle = all[25]!;
    const rest = (await collect(new ExportWalk(stores.deps(), options({ after: { token: hashKey(middle), key: middle } })))).map((r) => r.key);
    expect(rest).toEqual(all.slice(26));

    const range = { start: 3_000_000_000, end: 1_000_000_000 };
    const inRange = (await collect(new ExportWalk(stores.deps(), options({ range })))).map((r) => r.key);
    expect(inRange).toEqual(all.filter((key) => hashKey(key) > range.start || hashKey(key) <= range.end));
  });

  it("leaves out a member that fails and reports it; fails with Unavailable once a range has fewer than R readable replicas", async () => {
    const stores = new FakeStores(2);
    for (let i = 0; i < 30; i++) for (const node of NODES) stores.put(node, `k${i}`, version("n1", `v${i}`));
    stores.failing.set("n2", 3);
    const walk = new ExportWalk(stores.deps(), options());
    expect(await collect(walk)).toHaveLength(30);
    expect([...walk.unreadable.keys()]).toEqual(["n2"]);

    const worse = new FakeStores(2);
    for (let i = 0; i < 30; i++) for (const node of NODES) worse.put(node, `k${i}`, version("n1", `v${i}`));
    worse.failing.set("n2", 3);
    worse.failing.set("n3", 0);
    const err = await collect(new ExportWalk(worse.deps(), options())).catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Unavailable);
    expect((err as ConnectError).rawMessage).toMatch(/1 readable replica\(s\) of 3, R=2 needed \(n2: unavailable: n2 is down; n3: unavailable: n3 is down\)/);
  });

  it("stops when the caller goes away", async () => {
    const stores = new FakeStores(1);
    for (let i = 0; i < 10; i++) stores.put("n1", `k${i}`, version("n1", "v"));
    const controller = new AbortController();
    const deps = stores.deps();
    const walk = new ExportWalk(
      {
        ...deps,
        scan: (node, after, lastToken, signal) => {
          if (stores.pages.get(node) === 2) controller.abort();
          if (signal.aborted) return Promise.reject(new Error("aborted"));
          return deps.scan(node, after, lastToken, signal);
        },
      },
      options({ signal: controller.signal }),
    );
    const err = await collect(walk).catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.Canceled);
  });
});
