import { ClassicLevel } from "classic-level";
import { afterEach, describe, expect, it } from "vitest";
import { FORMAT_KEY } from "./codec.js";
import { HintStoreClosedError, HintStoreFormatError, HintStoreFullError, HintStoreInputError, HintStoreOpenError } from "./errors.js";
import { HintStore, type HintStoreOptions } from "./hint-store.js";
import { FakeClock, hintBytes, recordFor, TempDirs } from "./test-support/temp-dirs.js";

const tempDirs = new TempDirs();
const openStores: HintStore[] = [];

afterEach(async () => {
  await Promise.all(openStores.splice(0).map((store) => store.close()));
  tempDirs.cleanup();
});

async function open(dir: string, options?: HintStoreOptions): Promise<HintStore> {
  const store = await HintStore.open(dir, options);
  openStores.push(store);
  return store;
}

async function enqueueKeys(store: HintStore, target: string, keys: readonly string[]) {
  const hints = [];
  for (const key of keys) {
    hints.push(await store.enqueue(target, key, recordFor(key)));
  }
  return hints;
}

const keysOf = (hints: readonly { key: string }[]) => hints.map((hint) => hint.key);

describe("enqueue and list", () => {
  it("returns the stored hint and lists a target's hints in enqueue order", async () => {
    const clock = new FakeClock(1000);
    const store = await open(tempDirs.create(), { now: clock.now });
    const hint = await store.enqueue("node-b", "k1", new Uint8Array([1, 2, 3]));
    expect(hint).toMatchObject({ target: "node-b", key: "k1", createdAt: 1000 });
    expect(hint.record).toEqual(new Uint8Array([1, 2, 3]));
    await enqueueKeys(store, "node-b", ["k2", "k3", "k0"]);

    const listed = await store.list("node-b");
    expect(keysOf(listed)).toEqual(["k1", "k2", "k3", "k0"]);
    expect(listed[0]).toEqual(hint);
    const ids = listed.map((h) => h.id);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
    expect(keysOf(await store.list("node-b", 2))).toEqual(["k1", "k2"]);
    expect(await store.list("node-nobody")).toEqual([]);
  });

  it("keeps enqueue order across close and reopen, and continues it", async () => {
    const dir = tempDirs.create();
    const first = await open(dir);
    await enqueueKeys(first, "n1", ["a", "b", "c"]);
    await first.close();

    const second = await open(dir);
    expect(keysOf(await second.list("n1"))).toEqual(["a", "b", "c"]);
    await enqueueKeys(second, "n1", ["d"]);
    const listed = await second.list("n1");
    expect(keysOf(listed)).toEqual(["a", "b", "c", "d"]);
    expect(listed[2]!.id < listed[3]!.id).toBe(true);
    for (const hint of listed) {
      expect(hint.record).toEqual(recordFor(hint.key));
    }
  });

  it("isolates targets, including targets that are prefixes of each other", async () => {
    const store = await open(tempDirs.create());
    const targets = ["a", "a@b", "ab", "b", "\u00e9", "e\u0301"];
    for (const [i, target] of targets.entries()) {
      await enqueueKeys(store, target, [`${target}-1`, `${target}-2`].slice(0, (i % 2) + 1));
    }
    for (const [i, target] of targets.entries()) {
      expect(keysOf(await store.list(target))).toEqual([`${target}-1`, `${target}-2`].slice(0, (i % 2) + 1));
    }
    expect(store.targets().map((t) => [t.target, t.count])).toEqual([...targets].sort().map((t) => [t, (targets.indexOf(t) % 2) + 1]));
  });

  it("lists many concurrent enqueues (one group commit) in call order", async () => {
    const store = await open(tempDirs.create());
    const keys = Array.from({ length: 300 }, (_, i) => `k${i}`);
    const hints = await Promise.all(keys.map((key) => store.enqueue("t", key, recordFor(key))));
    expect(keysOf(hints)).toEqual(keys);
    expect(keysOf(await store.list("t", 1000))).toEqual(keys);
    expect(store.size()).toBe(300);
    expect(store.counters().stored).toBe(300);
  });

  it("stores a copy of the record and round-trips arbitrary bytes, including empty", async () => {
    const store = await open(tempDirs.create());
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    const hint = await store.enqueue("t", "k", bytes);
    bytes.fill(0);
    await store.enqueue("t", "empty", new Uint8Array(0));
    await store.enqueue("t", "buffer", Buffer.from("from a Buffer"));
    const [stored, empty, fromBuffer] = await store.list("t");
    const expected = Uint8Array.from({ length: 256 }, (_, i) => i);
    expect(hint.record).toEqual(expected);
    expect(stored!.record).toEqual(expected);
    expect(empty!.record).toEqual(new Uint8Array(0));
    expect(Buffer.from(fromBuffer!.record).toString()).toBe("from a Buffer");
  });

  it("clamps createdAt so it never decreases when the clock steps back", async () => {
    const clock = new FakeClock(10_000);
    const store = await open(tempDirs.create(), { now: clock.now });
    await store.enqueue("t", "k1", recordFor("k1"));
    clock.time = 4_000;
    const second = await store.enqueue("t", "k2", recordFor("k2"));
    expect(second.createdAt).toBe(10_000);
    clock.time = 12_000;
    expect((await store.enqueue("t", "k3", recordFor("k3"))).createdAt).toBe(12_000);
  });

  it("works with sync: true", async () => {
    const dir = tempDirs.create();
    const store = await open(dir, { sync: true });
    const hint = await store.enqueue("t", "k", recordFor("k"));
    await store.close();
    const reopened = await open(dir, { sync: true });
    expect(await reopened.list("t")).toEqual([hint]);
    expect(await reopened.ack([hint])).toBe(1);
  });
});

describe("ack", () => {
  it("removes acknowledged hints by hint or id and counts only real removals", async () => {
    const store = await open(tempDirs.create());
    const [h1, h2, h3] = await enqueueKeys(store, "t", ["k1", "k2", "k3"]);
    expect(await store.ack([h2!])).toBe(1);
    expect(await store.ack([h2!.id, h1!.id, h1!.id])).toBe(1);
    expect(await store.ack([h1!, h2!])).toBe(0);
    expect(keysOf(await store.list("t"))).toEqual(["k3"]);
    expect(store.counters()).toMatchObject({ delivered: 2, stored: 3 });
    expect(await store.ack([])).toBe(0);
    // A well-formed id of a hint this store never had is a no-op as well.
    expect(await store.ack([h3!.id.replace("@t", "@other")])).toBe(0);
    expect(store.size()).toBe(1);
  });

  it("counts a hint acknowledged by two concurrent acks once", async () => {
    const store = await open(tempDirs.create());
    const [hint] = await enqueueKeys(store, "t", ["k"]);
    const results = await Promise.all([store.ack([hint!]), store.ack([hint!.id]), store.expire()]);
    expect(results).toEqual([1, 0, 0]);
    expect(store.counters().delivered).toBe(1);
    expect(store.size()).toBe(0);
    expect(store.targets()).toEqual([]);
  });

  it("can acknowledge a hint whose enqueue is still in flight", async () => {
    const store = await open(tempDirs.create());
    const [existing] = await enqueueKeys(store, "t", ["k0"]);
    const pending = store.enqueue("t", "k1", recordFor("k1"));
    // The next id is predictable for this test only: sequence numbers increase by one.
    const nextId = existing!.id.replace(/^(\w{16})/, (hex) => (Number.parseInt(hex, 16) + 1).toString(16).padStart(16, "0"));
    const [hint, removed] = await Promise.all([pending, store.ack([nextId])]);
    expect(hint.id).toBe(nextId);
    expect(removed).toBe(1);
    expect(keysOf(await store.list("t"))).toEqual(["k0"]);
  });

  it("rejects strings that are not hint ids", async () => {
    const store = await open(tempDirs.create());
    await expect(store.ack(["not-an-id"])).rejects.toThrow(HintStoreInputError);
    await expect(store.ack("0000000000000001@t" as unknown as string[])).rejects.toThrow(HintStoreInputError);
  });
});

describe("crash between send and ack", () => {
  it("keeps listed-but-unacknowledged hints across close, and ack after reopen removes them once", async () => {
    const dir = tempDirs.create();
    const store = await open(dir);
    await enqueueKeys(store, "t", ["k1", "k2"]);
    const sent = await store.list("t");
    await store.close(); // the target received `sent`, but we "crashed" before ack

    const reopened = await open(dir);
    expect(await reopened.list("t")).toEqual(sent);
    expect(reopened.size()).toBe(2);
    expect(await reopened.ack(sent)).toBe(2);
    expect(await reopened.ack(sent)).toBe(0);
    await reopened.close();

    const third = await open(dir);
    expect(await third.list("t")).toEqual([]);
    expect(third.targets()).toEqual([]);
    expect(third.size()).toBe(0);
  });

  it("never reuses an id after every hint was acknowledged and the store reopened", async () => {
    const dir = tempDirs.create();
    const store = await open(dir);
    const [old] = await enqueueKeys(store, "t", ["k1"]);
    await store.ack([old!]);
    await store.close();

    const reopened = await open(dir);
    const [fresh] = await enqueueKeys(reopened, "t", ["k2"]);
    expect(fresh!.id).not.toBe(old!.id);
    expect(old!.id < fresh!.id).toBe(true);
    // A late duplicate ack of the old hint must not remove the new one.
    expect(await reopened.ack([old!])).toBe(0);
    expect(keysOf(await reopened.list("t"))).toEqual(["k2"]);
  });
});

describe("expire (TTL)", () => {
  it("drops exactly the hints older than ttlMs, counts them and updates summaries", async () => {
    const clock = new FakeClock(0);
    const store = await open(tempDirs.create(), { now: clock.now, ttlMs: 1000 });
    await enqueueKeys(store, "a", ["a0"]); // t=0
    clock.advance(500);
    await enqueueKeys(store, "b", ["b500"]); // t=500
    clock.advance(500);
    await enqueueKeys(store, "a", ["a1000"]); // t=1000
    clock.advance(1000); // now 2000: a0 and b500 are older than 1000 ms; a1000 is exactly 1000 ms old

    expect(await store.expire()).toBe(2);
    expect(store.counters().expired).toBe(2);
    expect(keysOf(await store.list("a"))).toEqual(["a1000"]);
    expect(await store.list("b")).toEqual([]);
    expect(store.targets()).toEqual([{ target: "a", count: 1, bytes: hintBytes("a1000"), oldestCreatedAt: 1000, newestCreatedAt: 1000 }]);
    expect(await store.expire()).toBe(0);

    clock.advance(1);
    expect(await store.expire()).toBe(1);
    expect(store.targets()).toEqual([]);
    expect(store.size()).toBe(0);
    expect(store.counters().expired).toBe(3);
  });

  it("uses the default TTL of 3 hours", async () => {
    const clock = new FakeClock(0);
    const store = await open(tempDirs.create(), { now: clock.now });
    await enqueueKeys(store, "t", ["k"]);
    clock.advance(3 * 60 * 60 * 1000);
    expect(await store.expire()).toBe(0);
    clock.advance(1);
    expect(await store.expire()).toBe(1);
  });

  it("expires by the stored createdAt after a reopen", async () => {
    const dir = tempDirs.create();
    const clock = new FakeClock(0);
    const store = await open(dir, { now: clock.now, ttlMs: 100 });
    await enqueueKeys(store, "t", ["old"]);
    clock.advance(150);
    await enqueueKeys(store, "t", ["new"]);
    await store.close();
    clock.advance(60);
    const reopened = await open(dir, { now: clock.now, ttlMs: 100 });
    expect(await reopened.expire()).toBe(1);
    expect(keysOf(await reopened.list("t"))).toEqual(["new"]);
  });
});

describe("targets()", () => {
  it("stays exact through mixed enqueue, ack, expire and reopen", async () => {
    const dir = tempDirs.create();
    const clock = new FakeClock(100);
    const options = { now: clock.now, ttlMs: 50 };
    const store = await open(dir, options);
    const a = await enqueueKeys(store, "a", ["a1", "a2", "a3"]); // t=100
    clock.advance(10);
    const b = await enqueueKeys(store, "b", ["b1", "b2"]); // t=110
    clock.advance(20);
    await enqueueKeys(store, "a", ["a4"]); // t=130
    expect(store.targets()).toEqual([
      { target: "a", count: 4, bytes: hintBytes("a1", "a2", "a3", "a4"), oldestCreatedAt: 100, newestCreatedAt: 130 },
      { target: "b", count: 2, bytes: hintBytes("b1", "b2"), oldestCreatedAt: 110, newestCreatedAt: 110 },
    ]);

    await store.ack([a[0]!, b[1]!]);
    expect(store.targets()).toEqual([
      { target: "a", count: 3, bytes: hintBytes("a2", "a3", "a4"), oldestCreatedAt: 100, newestCreatedAt: 130 },
      { target: "b", count: 1, bytes: hintBytes("b1"), oldestCreatedAt: 110, newestCreatedAt: 110 },
    ]);
    await store.close();

    const reopened = await open(dir, options);
    expect(reopened.targets()).toEqual([
      { target: "a", count: 3, bytes: hintBytes("a2", "a3", "a4"), oldestCreatedAt: 100, newestCreatedAt: 130 },
      { target: "b", count: 1, bytes: hintBytes("b1"), oldestCreatedAt: 110, newestCreatedAt: 110 },
    ]);
    clock.advance(35); // now 165: t=100 and t=110 hints are older than 50 ms
    expect(await reopened.expire()).toBe(3);
    expect(reopened.targets()).toEqual([{ target: "a", count: 1, bytes: hintBytes("a4"), oldestCreatedAt: 130, newestCreatedAt: 130 }]);
    expect(reopened.bytes()).toBe(hintBytes("a4"));
    expect(reopened.size()).toBe(1);
  });
});

describe("maxHints", () => {
  it("refuses hints past maxHints and accepts again after acks", async () => {
    const store = await open(tempDirs.create(), { maxHints: 3 });
    const hints = await enqueueKeys(store, "t", ["k1", "k2", "k3"]);
    const refusal = store.enqueue("u", "k4", recordFor("k4"));
    await expect(refusal).rejects.toThrow(HintStoreFullError);
    await expect(refusal).rejects.toThrow(/full \(3 hints stored\).*"u"/);
    expect(store.size()).toBe(3);
    await store.ack([hints[0]!]);
    await expect(store.enqueue("u", "k4", recordFor("k4"))).resolves.toMatchObject({ key: "k4" });
  });

  it("counts in-flight enqueues against the limit", async () => {
    const store = await open(tempDirs.create(), { maxHints: 10 });
    const results = await Promise.allSettled(Array.from({ length: 15 }, (_, i) => store.enqueue("t", `k${i}`, recordFor(`k${i}`))));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(10);
    const rejected = results.filter((r) => r.status === "rejected");
    expect(rejected).toHaveLength(5);
    for (const r of rejected) {
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(HintStoreFullError);
    }
    expect(store.size()).toBe(10);
  });

  it("applies to hints recovered from disk", async () => {
    const dir = tempDirs.create();
    const store = await open(dir);
    await enqueueKeys(store, "t", ["k1", "k2"]);
    await store.close();
    const reopened = await open(dir, { maxHints: 2 });
    await expect(reopened.enqueue("t", "k3", recordFor("k3"))).rejects.toThrow(HintStoreFullError);
  });
});

describe("dropTarget", () => {
  it("drops every hint of one target only, and counts them", async () => {
    const store = await open(tempDirs.create());
    await enqueueKeys(store, "gone", ["g1", "g2", "g3"]);
    await enqueueKeys(store, "stays", ["s1"]);
    const inFlight = store.enqueue("gone", "g4", recordFor("g4"));
    expect(await store.dropTarget("gone")).toBe(4);
    await inFlight;
    expect(await store.list("gone")).toEqual([]);
    expect(keysOf(await store.list("stays"))).toEqual(["s1"]);
    expect(store.targets().map((t) => t.target)).toEqual(["stays"]);
    expect(store.size()).toBe(1);
    expect(store.counters()).toMatchObject({ dropped: 4, delivered: 0, expired: 0 });
    expect(await store.dropTarget("gone")).toBe(0);
    expect(await store.dropTarget("never-seen")).toBe(0);
  });
});

describe("counters", () => {
  it("counts stored, delivered, expired, failed and dropped since open", async () => {
    const dir = tempDirs.create();
    const clock = new FakeClock(0);
    const store = await open(dir, { now: clock.now, ttlMs: 10 });
    const [h1] = await enqueueKeys(store, "t", ["k1", "k2"]);
    store.recordFailure("t");
    store.recordFailure("t");
    await store.ack([h1!]);
    clock.advance(11);
    await enqueueKeys(store, "u", ["k3", "k4"]);
    await store.expire();
    await store.dropTarget("u");
    const expected = { stored: 4, merged: 0, delivered: 1, expired: 1, failed: 2, dropped: 2, refused: 0 };
    expect(store.counters()).toEqual(expected);
    await store.close();
    expect(store.counters()).toEqual(expected);
    const reopened = await open(dir);
    expect(reopened.counters()).toEqual({ stored: 0, merged: 0, delivered: 0, expired: 0, failed: 0, dropped: 0, refused: 0 });
  });

  it("returns a copy", async () => {
    const store = await open(tempDirs.create());
    store.counters().stored = 99;
    expect(store.counters().stored).toBe(0);
  });
});

describe("closed store", () => {
  it("rejects every operation with HintStoreClosedError and closes idempotently", async () => {
    const store = await open(tempDirs.create());
    const [hint] = await enqueueKeys(store, "t", ["k"]);
    await store.close();
    await store.close();
    await expect(store.enqueue("t", "k2", recordFor("k2"))).rejects.toThrow(HintStoreClosedError);
    await expect(store.list("t")).rejects.toThrow(HintStoreClosedError);
    await expect(store.ack([hint!])).rejects.toThrow(HintStoreClosedError);
    await expect(store.expire()).rejects.toThrow(HintStoreClosedError);
    await expect(store.dropTarget("t")).rejects.toThrow(HintStoreClosedError);
    expect(() => store.recordFailure("t")).toThrow(HintStoreClosedError);
    await expect(store.enqueue("t", "k2", recordFor("k2"))).rejects.toThrow(/closed; cannot enqueue/);
  });

  it("finishes enqueues that were accepted before close", async () => {
    const dir = tempDirs.create();
    const store = await open(dir);
    const pending = Array.from({ length: 20 }, (_, i) => store.enqueue("t", `k${i}`, recordFor(`k${i}`)));
    const listing = store.list("t");
    await store.close();
    expect(await Promise.all(pending)).toHaveLength(20);
    await listing;
    const reopened = await open(dir);
    expect((await reopened.list("t")).length).toBe(20);
  });
});

describe("input validation and on-disk format", () => {
  it("rejects bad arguments with HintStoreInputError", async () => {
    const store = await open(tempDirs.create());
    await expect(store.enqueue("", "k", recordFor("k"))).rejects.toThrow(HintStoreInputError);
    await expect(store.enqueue("t", "", recordFor("k"))).rejects.toThrow(HintStoreInputError);
    await expect(store.enqueue("t", "\ud800", recordFor("k"))).rejects.toThrow(/lone surrogates/);
    await expect(store.enqueue("t", "k", "bytes" as unknown as Uint8Array)).rejects.toThrow(/Uint8Array/);
    await expect(store.list("t", 0)).rejects.toThrow(/positive integer/);
    await expect(store.list("t", 1.5)).rejects.toThrow(HintStoreInputError);
    await expect(store.dropTarget("")).rejects.toThrow(HintStoreInputError);
    expect(() => store.recordFailure("")).toThrow(HintStoreInputError);
    expect(store.size()).toBe(0);
  });

  it("rejects bad options and a clock that returns garbage", async () => {
    const dir = tempDirs.create();
    await expect(HintStore.open(dir, { ttlMs: 0 })).rejects.toThrow(/ttlMs/);
    await expect(HintStore.open(dir, { maxHints: -1 })).rejects.toThrow(/maxHints/);
    await expect(HintStore.open(dir, { now: 5 as unknown as () => number })).rejects.toThrow(/now/);
    await expect(HintStore.open("")).rejects.toThrow(HintStoreInputError);
    const store = await open(dir, { now: () => Number.NaN });
    await expect(store.enqueue("t", "k", recordFor("k"))).rejects.toThrow(/clock returned NaN/);
    expect(store.size()).toBe(0);
  });

  it("refuses a LevelDB that is not a hint store, or of another format version", async () => {
    const foreign = tempDirs.create();
    const db = new ClassicLevel(foreign);
    await db.put("some", "data");
    await db.close();
    await expect(HintStore.open(foreign)).rejects.toThrow(HintStoreFormatError);

    const future = tempDirs.create();
    const store = await HintStore.open(future);
    await store.close();
    const raw = new ClassicLevel<Buffer, Buffer>(future, { keyEncoding: "buffer", valueEncoding: "buffer" });
    await raw.put(FORMAT_KEY, Buffer.from("dynamo-ts/hintstore@2"));
    await raw.close();
    await expect(HintStore.open(future)).rejects.toThrow(/format "dynamo-ts\/hintstore@2"/);
  });

  it("reports a store that is already open elsewhere as HintStoreOpenError", async () => {
    const dir = tempDirs.create();
    await open(dir);
    await expect(HintStore.open(dir)).rejects.toThrow(HintStoreOpenError);
  });
});
