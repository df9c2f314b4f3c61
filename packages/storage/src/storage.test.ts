import { hashKey, rangeContains } from "@dynamo-ts/ring";
import type { TokenRange } from "@dynamo-ts/ring";
import { emptySet, isDeleted, liveValues, sync, update } from "@dynamo-ts/vclock";
import type { SiblingSet } from "@dynamo-ts/vclock";
import { ClassicLevel } from "classic-level";
import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import { StorageClosedError, StorageCorruptionError, StorageFormatError, StorageInputError, StorageOpenError, StorageWriteError } from "./errors.js";
import { FORMAT_KEY, dataKey } from "./layout.js";
import { Storage } from "./storage.js";
import type { StorageOptions } from "./storage.js";
import { TempDirs } from "./test-support/temp-dirs.js";

const tempDirs = new TempDirs();
const openStores: Storage[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(openStores.splice(0).map((store) => store.close()));
  tempDirs.cleanup();
});

async function openStore(dir = tempDirs.create(), options?: StorageOptions): Promise<Storage> {
  const store = await Storage.open(dir, options);
  openStores.push(store);
  return store;
}

const NONE = new Map<string, number>();
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const text = (s: string): Uint8Array => encoder.encode(s);
const values = (set: SiblingSet | undefined): string[] => (set === undefined ? [] : liveValues(set).map((v) => decoder.decode(v)));
/** A blind write of `value` coordinated by `node`. */
const write = (node: string, value: string, timestamp = 1) => (current: SiblingSet | undefined) => update(current, NONE, node, text(value), timestamp);

describe("update and get", () => {
  it("stores and reads back a set; absent keys are undefined", async () => {
    const store = await openStore();
    expect(await store.get("k")).toBeUndefined();
    const change = await store.update("k", write("n1", "v"));
    expect(change).toMatchObject({ key: "k", token: hashKey("k"), before: undefined, changed: true });
    expect(values(change.after)).toEqual(["v"]);
    expect(values(await store.get("k"))).toEqual(["v"]);
  });

  it("passes the latest state to fn, including writes not yet flushed", async () => {
    const store = await openStore();
    const seen: (string[] | undefined)[] = [];
    const first = store.update("k", write("n1", "a"));
    const second = store.update("k", (current) => {
      seen.push(current && values(current));
      return update(current, current?.clock ?? NONE, "n1", text("b"), 2);
    });
    expect(values(await store.get("k"))).toEqual(["b"]);
    await Promise.all([first, second]);
    expect(seen).toEqual([["a"]]);
    expect(values(await store.get("k"))).toEqual(["b"]);
  });

  it("never loses an update among 200 concurrent read-modify-writes of one key", async () => {
    const store = await openStore();
    // Each call adds a blind sibling: a lost update would show up as a missing sibling.
    await Promise.all(Array.from({ length: 200 }, (_, i) => store.update("hot", write("n1", `w${i}`, i))));
    const stored = await store.get("hot");
    expect(values(stored).sort()).toEqual(Array.from({ length: 200 }, (_, i) => `w${i}`).sort());
    // A counter: each increment reads the previous value and writes back with its context.
    const increment = (current: SiblingSet | undefined) => {
      const n = Number(values(current)[0] ?? "0");
      return update(current, current?.clock ?? NONE, "n1", text(String(n + 1)), n);
    };
    await Promise.all(Array.from({ length: 200 }, () => store.update("counter", increment)));
    expect(values(await store.get("counter"))).toEqual(["200"]);
  });

  it("rejects when fn throws, leaving the stored state alone", async () => {
    const store = await openStore();
    await store.update("k", write("n1", "v"));
    await expect(
      store.update("k", () => {
        throw new Error("nope");
      }),
    ).rejects.toThrow("nope");
    expect(values(await store.get("k"))).toEqual(["v"]);
    expect(store.stats().writes).toBe(1);
  });

  it("does not write when the result equals the stored state", async () => {
    const store = await openStore();
    await store.update("k", write("n1", "v"));
    const change = await store.update("k", (current) => current ?? emptySet());
    expect(change.changed).toBe(false);
    expect((await store.update("absent", () => emptySet())).changed).toBe(false);
    expect(await store.get("absent")).toBeUndefined();
    expect(store.stats()).toMatchObject({ batches: 1, operations: 1, writes: 1 });
  });

  it("round-trips non-ASCII keys and rejects keys that are not well-formed Unicode", async () => {
    const store = await openStore();
    for (const key of ["", "ключ", "日本語", "emoji-😀"]) {
      await store.update(key, write("n1", key));
      expect(values(await store.get(key))).toEqual([key]);
    }
    expect((await collect(store.scan())).map((e) => e.key).sort()).toEqual(["", "emoji-😀", "ключ", "日本語"].sort());
    await expect(store.update("bad\uD800", write("n1", "v"))).rejects.toThrow(StorageInputError);
    await expect(store.get("bad\uDC00")).rejects.toThrow(StorageInputError);
  });

  it("reports stored bytes that do not decode as corruption", async () => {
    const dir = tempDirs.create();
    await (await Storage.open(dir)).close();
    const raw = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: "view", valueEncoding: "view" });
    await raw.put(dataKey(hashKey("k"), "k"), Uint8Array.of(0x01, 0x05));
    await raw.close();
    const store = await openStore(dir);
    await expect(store.get("k")).rejects.toThrow(StorageCorruptionError);
    await expect(store.merge("k", emptySet())).rejects.toThrow(/key "k" does not decode/);
  });
});

describe("merge", () => {
  it("applies remote state with vclock sync semantics", async () => {
    const store = await openStore();
    const remote = update(undefined, NONE, "n2", text("remote"), 1);
    const first = await store.merge("k", remote);
    expect(first.changed).toBe(true);
    expect(values(first.after)).toEqual(["remote"]);

    // The same state again, or an older one it descends from: nothing to write.
    expect((await store.merge("k", remote)).changed).toBe(false);
    expect((await store.merge("k", emptySet())).changed).toBe(false);

    // A concurrent write from another coordinator becomes a sibling.
    const concurrent = update(undefined, NONE, "n3", text("other"), 2);
    const merged = await store.merge("k", concurrent);
    expect(merged.changed).toBe(true);
    expect(values(merged.after)).toEqual(["remote", "other"]);
    expect(merged.before).toEqual(first.after);
    expect(store.stats().writes).toBe(2);
  });

  it("never resurrects a value that a stored tombstone covered", async () => {
    const store = await openStore();
    const written = update(undefined, NONE, "n1", text("v"), 1);
    await store.merge("k", written);
    await store.update("k", (current) => update(current, written.clock, "n1", null, 2));
    const change = await store.merge("k", written); // a stale replica's copy
    expect(change.changed).toBe(false);
    expect(isDeleted((await store.get("k")) as SiblingSet)).toBe(true);
  });

  it("converges to the same stored state whatever the order of incoming merges", async () => {
    const states = [
      update(undefined, NONE, "a", text("1"), 1),
      update(undefined, NONE, "b", text("2"), 2),
      update(update(undefined, NONE, "a", text("1"), 1), new Map([["a", 1]]), "c", null, 3),
    ];
    const one = await openStore();
    const other = await openStore();
    for (const s of states) await one.merge("k", s);
    for (const s of states.toReversed()) await other.merge("k", s);
    expect(await one.get("k")).toEqual(await other.get("k"));
    expect(await one.get("k")).toEqual(states.reduce(sync, emptySet()));
  });
});

describe("group commit", () => {
  it("gathers concurrent writes to different keys into one batch", async () => {
    const store = await openStore(undefined, { sync: true });
    await Promise.all(Array.from({ length: 100 }, (_, i) => store.update(`k${i}`, write("n1", `v${i}`))));
    expect(store.stats()).toMatchObject({ batches: 1, operations: 100, writes: 100, pendingOperations: 0 });
    expect(await store.count()).toBe(100);
  });

  it("splits batches at maxBatchSize and gathers writes that arrive while a batch is being written", async () => {
    const store = await openStore(undefined, { maxBatchSize: 10 });
    await Promise.all(Array.from({ length: 95 }, (_, i) => store.update(`k${i}`, write("n1", "v"))));
    expect(store.stats()).toMatchObject({ batches: 10, operations: 95 });

    const before = store.stats().batches;
    const first = store.update("x", write("n1", "v")); // starts a batch on its own
    await Promise.resolve();
    await Promise.resolve(); // the first batch is now being written
    const later = Array.from({ length: 5 }, (_, i) => store.update(`later${i}`, write("n1", "v")));
    expect(store.stats().pendingOperations).toBe(6);
    await Promise.all([first, ...later]);
    expect(store.stats().batches - before).toBe(2);
  });

  it("writes repeated updates of one key in a batch as one operation, in call order", async () => {
    const store = await openStore();
    await Promise.all(["a", "b", "c"].map((v) => store.update("k", (current) => update(current, current?.clock ?? NONE, "n1", text(v), 1))));
    expect(store.stats()).toMatchObject({ batches: 1, operations: 1, writes: 3 });
    expect(values(await store.get("k"))).toEqual(["c"]);
  });

  it("keeps per-key order across batches", async () => {
    const dir = tempDirs.create();
    const store = await Storage.open(dir, { maxBatchSize: 1 });
    const overwrite = (v: string) => (current: SiblingSet | undefined) => update(current, current?.clock ?? NONE, "n1", text(v), 1);
    await Promise.all([store.update("k", overwrite("1")), store.update("other", overwrite("x")), store.update("k", overwrite("2"))]);
    expect(store.stats().batches).toBe(3);
    await store.close();
    const reopened = await openStore(dir);
    expect(values(await reopened.get("k"))).toEqual(["2"]);
  });

  it("rejects exactly the calls of a failed batch and recovers for the next", async () => {
    const store = await openStore(undefined, { maxBatchSize: 2 });
    const realBatch = ClassicLevel.prototype.batch;
    let calls = 0;
    vi.spyOn(ClassicLevel.prototype, "batch").mockImplementation(function (this: ClassicLevel, ...args: unknown[]) {
      if (calls++ === 0) return Promise.reject(new Error("disk on fire"));
      return (realBatch as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof ClassicLevel.prototype.batch);

    const results = await Promise.allSettled(["a", "b", "c", "d"].map((k) => store.update(k, write("n1", k))));
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected", "fulfilled", "fulfilled"]);
    const failure = (results[0] as PromiseRejectedResult).reason as Error;
    expect(failure).toBeInstanceOf(StorageWriteError);
    expect(failure.message).toMatch(/disk on fire/);
    expect(store.stats()).toMatchObject({ batches: 1, failedBatches: 1, operations: 2, writes: 2, pendingOperations: 0 });
    // The failed writes are not visible; the store keeps working.
    expect(await store.get("a")).toBeUndefined();
    expect(values(await store.get("c"))).toEqual(["c"]);
    await store.update("a", write("n1", "again"));
    expect(values(await store.get("a"))).toEqual(["again"]);
  });
});

describe("removeIf", () => {
  it("removes only when the predicate holds on the current state", async () => {
    const store = await openStore();
    await store.update("live", write("n1", "v"));
    await store.update("dead", (current) => update(current, NONE, "n1", null, 1));
    expect(await store.removeIf("live", isDeleted)).toBe(false);
    expect(await store.removeIf("dead", isDeleted)).toBe(true);
    expect(await store.get("dead")).toBeUndefined();
    expect(await store.get("live")).toBeDefined();
    expect(await store.count()).toBe(1);
    const predicate = vi.fn(() => true);
    expect(await store.removeIf("absent", predicate)).toBe(false);
    expect(predicate).not.toHaveBeenCalled();
  });

  it("sees a write made just before it, so it never purges a tombstone that was just superseded", async () => {
    const store = await openStore();
    const tombstone = await store.update("k", (current) => update(current, NONE, "n1", null, 1));
    const revived = store.update("k", write("n2", "new", 2)); // concurrent with the delete: stays as a sibling
    expect(await store.removeIf("k", isDeleted)).toBe(false);
    await revived;
    expect(values(await store.get("k"))).toEqual(["new"]);
    expect(tombstone.changed).toBe(true);
  });
});

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

describe("scan and count", () => {
  const TOP = 0xffff_ffff;

  it("returns exactly the keys of a token range, in ring order from the range start, wrapping around", async () => {
    const store = await openStore();
    const keys = Array.from({ length: 300 }, (_, i) => `key-${i}`);
    await Promise.all(keys.map((k) => store.update(k, write("n1", k))));
    const tokens = keys.map(hashKey);
    const edge = fc.constantFrom(0, 1, TOP - 1, TOP, ...tokens.slice(0, 5), ...tokens.slice(0, 5).map((t) => (t + 1) % 2 ** 32));
    const token = fc.oneof(fc.nat({ max: TOP }), edge);

    await fc.assert(
      fc.asyncProperty(fc.record({ start: token, end: token }), async (range: TokenRange) => {
        const distance = (t: number) => (t - range.start - 1 + 2 ** 32) % 2 ** 32;
        const expected = keys
          .filter((k) => rangeContains(range, hashKey(k)))
          .sort((a, b) => distance(hashKey(a)) - distance(hashKey(b)) || (a < b ? -1 : 1));
        const scanned = await collect(store.scan(range));
        expect(scanned.map((e) => e.key)).toEqual(expected);
        for (const entry of scanned) {
          expect(entry.token).toBe(hashKey(entry.key));
          expect(values(entry.set)).toEqual([entry.key]);
        }
        expect(await store.count(range)).toBe(expected.length);
      }),
      { numRuns: 60, seed: 5 },
    );

    const all = await collect(store.scan());
    expect(all.map((e) => e.token)).toEqual(tokens.toSorted((a, b) => a - b));
    expect(await store.count()).toBe(300);
    expect(await store.count({ start: 7, end: 7 })).toBe(300);
  });

  it("rejects invalid ranges", async () => {
    const store = await openStore();
    await expect(store.count({ start: -1, end: 5 })).rejects.toThrow(StorageInputError);
    await expect(collect(store.scan({ start: 0, end: 2 ** 32 }))).rejects.toThrow(StorageInputError);
    await expect(collect(store.scan({ start: 0.5, end: 1 }))).rejects.toThrow(StorageInputError);
  });
});

describe("persistence and format", () => {
  it("keeps data across close and reopen", async () => {
    const dir = tempDirs.create();
    const store = await Storage.open(dir, { sync: true });
    await store.update("a", write("n1", "1"));
    await store.update("b", write("n1", "2"));
    await store.removeIf("b", () => true);
    await store.close();
    const reopened = await openStore(dir);
    expect(values(await reopened.get("a"))).toEqual(["1"]);
    expect(await reopened.get("b")).toBeUndefined();
    expect(await reopened.count()).toBe(1);
  });

  it("refuses a directory written with another format", async () => {
    const dir = tempDirs.create();
    await (await Storage.open(dir)).close();
    const raw = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: "view", valueEncoding: "view" });
    await raw.put(FORMAT_KEY, text("dynamo-ts/storage sibling-sets v0"));
    await raw.close();
    await expect(Storage.open(dir)).rejects.toThrow(StorageFormatError);
    await expect(Storage.open(dir)).rejects.toThrow(/holds storage format "dynamo-ts\/storage sibling-sets v0"/);
  });

  it("refuses a LevelDB database it did not write", async () => {
    const dir = tempDirs.create();
    const raw = new ClassicLevel(dir);
    await raw.put("hint:1", "something else");
    await raw.close();
    await expect(Storage.open(dir)).rejects.toThrow(/no format marker/);
  });

  it("reports a directory already opened by another store", async () => {
    const dir = tempDirs.create();
    await openStore(dir);
    await expect(Storage.open(dir)).rejects.toThrow(StorageOpenError);
  });

  it("rejects a bad maxBatchSize", async () => {
    await expect(Storage.open(tempDirs.create(), { maxBatchSize: 0 })).rejects.toThrow(StorageInputError);
  });
});

describe("close", () => {
  it("writes accepted calls, then rejects every call with StorageClosedError", async () => {
    const dir = tempDirs.create();
    const store = await Storage.open(dir);
    const accepted = Array.from({ length: 10 }, (_, i) => store.update(`k${i}`, write("n1", "v")));
    const reading = store.get("k0");
    const closed = store.close();
    expect(store.close()).toBe(closed);
    await closed;
    await Promise.all(accepted);
    await reading;

    await expect(store.get("k")).rejects.toThrow(StorageClosedError);
    await expect(store.update("k", write("n1", "v"))).rejects.toThrow(StorageClosedError);
    await expect(store.merge("k", emptySet())).rejects.toThrow(StorageClosedError);
    await expect(store.removeIf("k", () => true)).rejects.toThrow(StorageClosedError);
    await expect(store.count()).rejects.toThrow(StorageClosedError);
    await expect(collect(store.scan())).rejects.toThrow(StorageClosedError);

    const reopened = await openStore(dir);
    expect(await reopened.count()).toBe(10);
  });

  it("ends a scan that is still running with StorageClosedError", async () => {
    const store = await Storage.open(tempDirs.create());
    await Promise.all(Array.from({ length: 2000 }, (_, i) => store.update(`k${i}`, write("n1", "v"))));
    const iterator = store.scan()[Symbol.asyncIterator]();
    await iterator.next();
    await store.close();
    await expect(collect({ [Symbol.asyncIterator]: () => iterator })).rejects.toThrow(StorageClosedError);
  });
});
