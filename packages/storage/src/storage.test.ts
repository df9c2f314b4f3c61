import { hashKey, rangeContains } from "@dynamo-ts/ring";
import type { TokenRange } from "@dynamo-ts/ring";
import { emptySet, encodeSiblingSet, isDeleted, liveValues, sync, update } from "@dynamo-ts/vclock";
import type { SiblingSet } from "@dynamo-ts/vclock";
import fs from "node:fs";
import { ClassicLevel } from "classic-level";
import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  StorageClosedError,
  StorageCorruptionError,
  StorageFormatError,
  StorageInputError,
  StorageOpenError,
  StorageUnavailableError,
  StorageWriteError,
} from "./errors.js";
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
const write =
  (node: string, value: string, timestamp = 1) =>
  (current: SiblingSet | undefined) =>
    update(current, NONE, node, text(value), timestamp);

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

  it("getRecord hands out the set with its bytes as stored: flushed, still pending, removed, absent", async () => {
    const store = await openStore();
    const plain = (bytes: Uint8Array) => expect(bytes.constructor).toBe(Uint8Array);
    const written = store.update("k", write("n1", "v"));
    const pending = await store.getRecord("k");
    expect(values(pending?.set)).toEqual(["v"]);
    expect(pending?.bytes).toEqual(encodeSiblingSet(pending!.set));
    const change = await written;
    const flushed = await store.getRecord("k");
    expect(flushed?.bytes).toEqual(change.afterBytes);
    expect(flushed?.set).toEqual(change.after);
    plain(flushed!.bytes);
    const removal = store.removeIf("k", () => true);
    expect(await store.getRecord("k")).toBeUndefined();
    expect(await removal).toBe(true);
    expect(await store.getRecord("k")).toBeUndefined();
    expect(await store.getRecord("absent")).toBeUndefined();
    await expect(store.getRecord("bad\uD800")).rejects.toThrow(StorageInputError);
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
    await expect(store.getRecord("k")).rejects.toThrow(StorageCorruptionError);
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
    // What listeners hash (anti-entropy's trees): exactly the encoding of the new state.
    expect(first.afterBytes).toEqual(encodeSiblingSet(first.after));
    expect(merged.afterBytes).toEqual(encodeSiblingSet(merged.after));
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
    await new Promise((resolve) => setImmediate(resolve)); // the first batch is now being written
    const later = Array.from({ length: 5 }, (_, i) => store.update(`later${i}`, write("n1", "v")));
    expect(store.stats().pendingOperations).toBe(6);
    await Promise.all([first, ...later]);
    expect(store.stats().batches - before).toBe(2);
  });

  it("gathers the writes of one turn of the event loop into one batch, even from separate callbacks", async () => {
    const store = await openStore();
    // Two callbacks of the same loop phase, as two sockets' data would be: one batch, not two.
    const writes = await new Promise<Array<Promise<unknown>>>((resolve) => {
      const issued: Array<Promise<unknown>> = [];
      setImmediate(() => issued.push(store.update("from-a", write("n1", "a"))));
      setImmediate(() => {
        issued.push(store.update("from-b", write("n1", "b")));
        resolve(issued);
      });
    });
    await Promise.all(writes);
    expect(store.stats()).toMatchObject({ batches: 1, operations: 2 });
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

  it("rejects exactly the calls of a failed batch with its error, refuses the batches queued behind it, and keeps no pending state", async () => {
    const store = await openStore(undefined, { maxBatchSize: 2 });
    await store.update("c", write("n1", "old-c"));
    const failures: Error[] = [];
    store.onWriteFailure((error) => failures.push(error));
    failNextBatches(1, "disk on fire");

    const results = await Promise.allSettled(["a", "b", "c", "d"].map((k) => store.update(k, write("n1", k))));
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected", "rejected", "rejected"]);
    const [a, b, c, d] = results.map((r) => (r as PromiseRejectedResult).reason as Error);
    // The failed batch: its own calls get its error, and only they do.
    expect(a).toBeInstanceOf(StorageWriteError);
    expect(a?.message).toMatch(/writing a batch of 2 operations failed: disk on fire/);
    expect(b).toBe(a);
    // The batch queued behind it is refused (never written after a failed write), with its own error.
    expect(c).toBeInstanceOf(StorageWriteError);
    expect(c).not.toBe(a);
    expect(c?.message).toMatch(/is not writable since .*disk on fire.*reopen\(\) it/);
    expect(d).toBe(c);
    expect(failures).toEqual([a]);
    expect(store.stats()).toMatchObject({ batches: 1, failedBatches: 2, operations: 1, writes: 1, pendingOperations: 0 });

    // No stale pending state: reads see the disk.
    expect(await store.get("a")).toBeUndefined();
    expect(values(await store.get("c"))).toEqual(["old-c"]);
    expect(store.health()).toMatchObject({ writable: false, error: a?.message });
    // Writes are refused until reopen; a call that writes nothing still succeeds.
    await expect(store.update("a", write("n1", "again"))).rejects.toThrow(/not writable/);
    expect((await store.update("c", (current) => current ?? emptySet())).changed).toBe(false);
    expect(failures).toHaveLength(1);

    await store.reopen();
    expect(store.health()).toEqual({ writable: true });
    await store.update("a", write("n1", "again"));
    expect(values(await store.get("a"))).toEqual(["again"]);
  });

  it("rejects an unchanged update that waited on a batch that failed", async () => {
    const store = await openStore();
    failNextBatches(1, "boom");
    const first = store.update("k", write("n1", "v"));
    const same = store.update("k", (current) => current as SiblingSet); // equals the pending state: waits for its batch
    await expect(first).rejects.toThrow(StorageWriteError);
    await expect(same).rejects.toThrow(StorageWriteError);
    expect(await store.get("k")).toBeUndefined();
  });
});

/** Makes the next `count` LevelDB batches fail with `message`; later ones go through. */
function failNextBatches(count: number, message: string): void {
  const realBatch = ClassicLevel.prototype.batch;
  let calls = 0;
  vi.spyOn(ClassicLevel.prototype, "batch").mockImplementation(function (this: ClassicLevel, ...args: unknown[]) {
    if (calls++ < count) return Promise.reject(new Error(message));
    return (realBatch as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof ClassicLevel.prototype.batch);
}

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
        const expected = keys.filter((k) => rangeContains(range, hashKey(k))).sort((a, b) => distance(hashKey(a)) - distance(hashKey(b)) || (a < b ? -1 : 1));
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

describe("created", () => {
  it("is true when open() created the store, false when it opened existing data, true again once the directory was wiped", async () => {
    const dir = tempDirs.create();
    const first = await Storage.open(dir);
    expect(first.created).toBe(true);
    await first.update("k", write("n1", "v"));
    await first.close();
    const second = await Storage.open(dir);
    expect(second.created).toBe(false);
    await second.close();
    // An empty store (no data, only the marker) is still an existing store.
    const emptyDir = tempDirs.create();
    await (await Storage.open(emptyDir)).close();
    const empty = await openStore(emptyDir);
    expect(empty.created).toBe(false);

    fs.rmSync(dir, { recursive: true });
    const wiped = await openStore(dir);
    expect(wiped.created).toBe(true);
    expect(await wiped.count()).toBe(0);
  });
});

describe("health, probe and reopen", () => {
  it("a healthy store is writable, probes fine and keeps its data and pending writes across reopen", async () => {
    const dir = tempDirs.create();
    const store = await openStore(dir, { sync: true });
    const listener = vi.fn();
    store.onWriteFailure(listener);
    expect(store.health()).toEqual({ writable: true });
    await store.probe();
    await store.update("a", write("n1", "1"));
    const inFlight = store.update("b", write("n1", "2")); // queued when reopen starts: written before the close
    const reopening = store.reopen();
    expect(store.reopen()).toBe(reopening);
    await reopening;
    await inFlight;
    expect(store.health()).toEqual({ writable: true });
    expect(values(await store.get("a"))).toEqual(["1"]);
    expect(values(await store.get("b"))).toEqual(["2"]);
    await store.update("c", write("n1", "3"));
    expect(await store.count()).toBe(3);
    expect(listener).not.toHaveBeenCalled();
    // Nothing of the probes is left in the database or the directory.
    await store.close();
    const raw = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: "view", valueEncoding: "view" });
    const keys: string[] = [];
    for await (const key of raw.keys()) keys.push(Buffer.from(key).toString("latin1"));
    await raw.close();
    expect(keys.filter((k) => k.startsWith("m"))).toEqual(["mformat"]);
    expect(fs.readdirSync(dir).filter((name) => name.includes("probe"))).toEqual([]);
  });

  it("a failed probe makes the store not writable and tells the listeners once; reopen recovers", async () => {
    const store = await openStore();
    await store.update("k", write("n1", "v"));
    const failures: Error[] = [];
    const unsubscribe = store.onWriteFailure((error) => failures.push(error));
    const put = vi.spyOn(ClassicLevel.prototype, "put").mockRejectedValue(new Error("EROFS: read-only file system"));

    const probed = await store.probe().catch((error: unknown) => error as Error);
    expect(probed).toBeInstanceOf(StorageWriteError);
    expect((probed as Error).message).toMatch(/probe write .* failed: EROFS/);
    const health = store.health();
    expect(health).toMatchObject({ writable: false, error: (probed as Error).message });
    expect(health.since).toEqual(expect.any(Number));
    expect(failures).toEqual([probed]);

    // Not probed again while failing, writes refused, reads served; the listener is not told again.
    await expect(store.probe()).rejects.toThrow(/not writable since/);
    expect(put).toHaveBeenCalledTimes(1);
    await expect(store.update("k2", write("n1", "v"))).rejects.toThrow(StorageWriteError);
    await expect(store.removeIf("k", () => true)).rejects.toThrow(StorageWriteError);
    expect(values(await store.get("k"))).toEqual(["v"]);
    expect(await store.count()).toBe(1);
    expect(failures).toHaveLength(1);

    // Still failing: reopen rejects with the new reason, since stays.
    await expect(store.reopen()).rejects.toThrow(StorageWriteError);
    expect(store.health()).toMatchObject({ writable: false, since: health.since });
    expect(failures).toHaveLength(1);

    put.mockRestore();
    await store.reopen();
    expect(store.health()).toEqual({ writable: true });
    await store.update("k2", write("n1", "v2"));
    expect(await store.count()).toBe(2);

    // Unsubscribed listeners are not told; one that throws is reported as a warning and changes nothing.
    unsubscribe();
    const warned = new Promise<Error>((resolve) => process.once("warning", resolve));
    store.onWriteFailure(() => {
      throw new Error("listener bug");
    });
    failNextBatches(1, "second failure");
    await expect(store.update("k3", write("n1", "v"))).rejects.toThrow(/second failure/);
    expect((await warned).message).toMatch(/listener threw: listener bug/);
    expect(failures).toHaveLength(1);
    expect(store.health().writable).toBe(false);
  });

  it("calls made during a reopen wait for it, then run against the reopened database", async () => {
    const store = await openStore();
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.update(`k${i}`, write("n1", `v${i}`))));
    const events: string[] = [];
    const reopening = store.reopen().then(() => events.push("reopened"));
    const calls = [
      store.get("k1").then((set) => events.push(`get ${values(set)}`)),
      store.update("k2", (current) => (events.push("update fn"), update(current, current?.clock ?? NONE, "n1", text("new"), 2))),
      store.merge("k3", emptySet()).then((change) => events.push(`merge ${change.changed}`)),
      store.removeIf("k4", () => (events.push("removeIf predicate"), true)),
      store.count().then((n) => events.push(`count ${n}`)),
      collect(store.scan()).then((entries) => events.push(`scan ${entries.length}`)),
      store.probe().then(() => events.push("probe")),
    ];
    await Promise.all([reopening, ...calls]);
    expect(events[0]).toBe("reopened");
    expect(events).toEqual(expect.arrayContaining(["get v1", "update fn", "merge false", "removeIf predicate", "probe"]));
    // count and scan include acknowledged writes; the removal may still be in flight.
    expect(events.find((e) => e.startsWith("count"))).toMatch(/^count (19|20)$/);
    expect(events.find((e) => e.startsWith("scan"))).toMatch(/^scan (19|20)$/);
    expect(await store.count()).toBe(19);
    expect(values(await store.get("k2"))).toEqual(["new"]);
  });

  it("a scan in progress carries on after a reopen from where it was", async () => {
    const store = await openStore();
    const keys = Array.from({ length: 300 }, (_, i) => `key-${i}`);
    await Promise.all(keys.map((k) => store.update(k, write("n1", k))));
    const expected = (await collect(store.scan())).map((e) => e.key);
    const iterator = store.scan()[Symbol.asyncIterator]();
    const seen: string[] = [];
    for (let i = 0; i < 100; i++) seen.push(((await iterator.next()).value as { key: string }).key);
    await store.reopen(); // closes the scan's iterator with the database
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) seen.push(next.value.key);
    expect(seen).toEqual(expected);
  });

  it("a count in progress is waited for by reopen; close waits for a reopen in progress", async () => {
    const store = await Storage.open(tempDirs.create());
    await Promise.all(Array.from({ length: 500 }, (_, i) => store.update(`k${i}`, write("n1", "v"))));
    const counting = store.count();
    const reopening = store.reopen();
    const closing = store.close();
    expect(await counting).toBe(500);
    await reopening;
    await closing;
    await expect(store.reopen()).rejects.toThrow(StorageClosedError);
    await expect(store.probe()).rejects.toThrow(StorageClosedError);
    await expect(store.get("k1")).rejects.toThrow(StorageClosedError);
  });

  it("never recreates a directory that lost its store: calls fail with StorageUnavailableError until a reopen finds it again", async () => {
    const dir = tempDirs.create();
    const store = await openStore(dir);
    await store.update("k", write("n1", "v"));
    const failures: Error[] = [];
    store.onWriteFailure((error) => failures.push(error));
    fs.renameSync(dir, `${dir}.away`);
    fs.mkdirSync(dir); // an empty directory where the store was, as after a wipe

    const error = (await store.reopen().catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(StorageUnavailableError);
    expect(error.message).toMatch(/cannot reopen storage at .* holds no LevelDB database any more \(ENOENT/);
    expect(store.health()).toMatchObject({ writable: false, error: error.message });
    expect(failures).toEqual([error]);
    await expect(store.get("k")).rejects.toThrow(StorageUnavailableError);
    await expect(store.update("k", write("n1", "w"))).rejects.toThrow(StorageUnavailableError);
    await expect(store.removeIf("k", () => true)).rejects.toThrow(StorageUnavailableError);
    await expect(store.count()).rejects.toThrow(StorageUnavailableError);
    await expect(collect(store.scan())).rejects.toThrow(StorageUnavailableError);
    await expect(store.probe()).rejects.toThrow(StorageUnavailableError);
    expect(fs.readdirSync(dir)).toEqual([]); // nothing was created

    fs.rmdirSync(dir);
    fs.renameSync(`${dir}.away`, dir);
    await store.reopen();
    expect(store.health()).toEqual({ writable: true });
    expect(values(await store.get("k"))).toEqual(["v"]);
    expect(failures).toHaveLength(1);
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
