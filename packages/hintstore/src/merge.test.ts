import { ClassicLevel } from "classic-level";
import { afterEach, describe, expect, it } from "vitest";
import {
  ALL_HINTS_RANGE,
  decodeHintKey,
  decodeSeqValue,
  encodeHintKey,
  encodeHintValue,
  encodeSeqValue,
  FORMAT_KEY,
  FORMAT_MARKER,
  NEXT_SEQ_KEY,
} from "./codec.js";
import { HintStoreError, HintStoreInputError } from "./errors.js";
import { HintStore, type HintStoreOptions } from "./hint-store.js";
import { bytes, concatenate, text } from "./test-support/merges.js";
import { FakeClock, TempDirs } from "./test-support/temp-dirs.js";

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

const summaryOf = async (store: HintStore, target: string) => (await store.list(target, 1000)).map((hint) => `${hint.key}=${text(hint.record)}`);

describe("one hint per (target, key)", () => {
  it("merges a second enqueue of a key into the stored hint, under a new id at the back of the queue", async () => {
    const clock = new FakeClock(1000);
    const store = await open(tempDirs.create(), { now: clock.now, merge: concatenate });
    const first = await store.enqueue("t", "k1", bytes("a"));
    const other = await store.enqueue("t", "k2", bytes("x"));
    clock.advance(500);
    const merged = await store.enqueue("t", "k1", bytes("b"));

    expect(merged).toMatchObject({ target: "t", key: "k1", createdAt: 1500 });
    expect(text(merged.record)).toBe("ab");
    expect(merged.id > other.id).toBe(true);
    expect(await summaryOf(store, "t")).toEqual(["k2=x", "k1=ab"]);
    expect((await store.list("t")).map((hint) => hint.id)).toEqual([other.id, merged.id]);
    expect(store.size()).toBe(2);
    expect(store.bytes()).toBe("k2x".length + "k1ab".length);
    expect(store.targets()).toEqual([{ target: "t", count: 2, bytes: 7, oldestCreatedAt: 1000, newestCreatedAt: 1500 }]);
    expect(store.counters()).toMatchObject({ stored: 3, merged: 1 });

    // The old id names a hint that no longer exists: acknowledging it removes nothing.
    expect(await store.ack([first])).toBe(0);
    expect(await summaryOf(store, "t")).toEqual(["k2=x", "k1=ab"]);
    expect(await store.ack([merged])).toBe(1);
    expect(await summaryOf(store, "t")).toEqual(["k2=x"]);
  });

  it("replaces the older record with the newer one by default", async () => {
    const store = await open(tempDirs.create());
    await store.enqueue("t", "k", bytes("old"));
    const newer = await store.enqueue("t", "k", bytes("new"));
    expect(await store.list("t")).toEqual([newer]);
    expect(text(newer.record)).toBe("new");
    expect(store.counters()).toMatchObject({ stored: 2, merged: 1 });
  });

  it("keeps the hints of one key for different targets apart", async () => {
    const store = await open(tempDirs.create(), { merge: concatenate });
    await store.enqueue("a", "k", bytes("1"));
    await store.enqueue("b", "k", bytes("2"));
    await store.enqueue("a", "k", bytes("3"));
    expect(await summaryOf(store, "a")).toEqual(["k=13"]);
    expect(await summaryOf(store, "b")).toEqual(["k=2"]);
    expect(store.counters().merged).toBe(1);
  });

  it("merges concurrent enqueues of one key, made in the same tick, in call order, none lost", async () => {
    const store = await open(tempDirs.create(), { merge: concatenate });
    await store.enqueue("t", "before", bytes("-"));
    const letters = "abcdefghijklmnopqrstuvwxyz".split("");
    const hints = await Promise.all(letters.map((letter) => store.enqueue("t", "k", bytes(letter))));

    // Each enqueue resolves with the hint as it stood after it: every earlier record merged in.
    expect(hints.map((hint) => text(hint.record))).toEqual(letters.map((_, i) => letters.slice(0, i + 1).join("")));
    expect(new Set(hints.map((hint) => hint.id)).size).toBe(letters.length);
    expect(await store.list("t")).toEqual([expect.objectContaining({ key: "before" }), hints.at(-1)]);
    expect(store.size()).toBe(2);
    expect(store.counters()).toMatchObject({ stored: letters.length + 1, merged: letters.length - 1 });
    expect(await store.ack(hints.slice(0, -1))).toBe(0);
  });

  it("merges into the record stored on disk after the store was reopened", async () => {
    const dir = tempDirs.create();
    const first = await open(dir, { merge: concatenate });
    await first.enqueue("t", "k", bytes("disk"));
    await first.close();
    const second = await open(dir, { merge: concatenate });
    const merged = await second.enqueue("t", "k", bytes("+new"));
    expect(text(merged.record)).toBe("disk+new");
    await second.close();
    const third = await open(dir);
    expect(await summaryOf(third, "t")).toEqual(["k=disk+new"]);
  });

  it("rejects with the merge's own error and changes nothing when the merge throws", async () => {
    const failure = new Error("cannot decode the older sibling set");
    const merge = (older: Uint8Array, newer: Uint8Array) => {
      if (text(newer) === "poison") {
        throw failure;
      }
      return concatenate(older, newer);
    };
    const store = await open(tempDirs.create(), { merge });
    const stored = await store.enqueue("t", "k", bytes("a"));
    const before = { targets: store.targets(), size: store.size(), bytes: store.bytes(), counters: store.counters() };

    await expect(store.enqueue("t", "k", bytes("poison"))).rejects.toBe(failure);
    expect(await store.list("t")).toEqual([stored]);
    expect({ targets: store.targets(), size: store.size(), bytes: store.bytes(), counters: store.counters() }).toEqual(before);

    // In one batch, the enqueues around a failed merge merge into each other as if it had not been made.
    const results = await Promise.allSettled([
      store.enqueue("t", "k", bytes("b")),
      store.enqueue("t", "k", bytes("poison")),
      store.enqueue("t", "k", bytes("c")),
    ]);
    expect(results.map((result) => result.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(await summaryOf(store, "t")).toEqual(["k=abc"]);
    expect(store.counters()).toMatchObject({ stored: 3, merged: 2 });
  });

  it("rejects a merge that returns something other than bytes", async () => {
    const store = await open(tempDirs.create(), { merge: () => "merged" as unknown as Uint8Array });
    await store.enqueue("t", "k", bytes("a"));
    await expect(store.enqueue("t", "k", bytes("b"))).rejects.toThrow(HintStoreInputError);
    expect(await summaryOf(store, "t")).toEqual(["k=a"]);
  });

  it("rejects a merge option that is not a function", async () => {
    await expect(HintStore.open(tempDirs.create(), { merge: 7 as unknown as HintStoreOptions["merge"] })).rejects.toThrow(/merge must be a function/);
  });

  it("orders a merge and an ack of the hint it replaces by call order", async () => {
    const store = await open(tempDirs.create(), { merge: concatenate });
    const old = await store.enqueue("t", "k", bytes("a"));
    // Merge first: the ack names a hint that is gone by then, and the merged hint stays.
    const [merged, removedAfter] = await Promise.all([store.enqueue("t", "k", bytes("b")), store.ack([old])]);
    expect(removedAfter).toBe(0);
    expect(await store.list("t")).toEqual([merged]);
    expect(text(merged.record)).toBe("ab");

    // Ack first: it removes the hint, and the enqueue after it starts a new one.
    const [removedBefore, fresh] = await Promise.all([store.ack([merged]), store.enqueue("t", "k", bytes("c"))]);
    expect(removedBefore).toBe(1);
    expect(text(fresh.record)).toBe("c");
    expect(await store.list("t")).toEqual([fresh]);
    expect(store.counters()).toMatchObject({ stored: 3, merged: 1, delivered: 1 });
  });

  it("orders a merge against dropTarget and expire by call order", async () => {
    const clock = new FakeClock(0);
    const store = await open(tempDirs.create(), { now: clock.now, ttlMs: 100, merge: concatenate });
    await store.enqueue("t", "k", bytes("a"));
    clock.advance(500);
    // The merged hint is created now, so expire() called after it finds nothing old enough.
    const [merged, expired] = await Promise.all([store.enqueue("t", "k", bytes("b")), store.expire()]);
    expect(expired).toBe(0);
    expect(merged.createdAt).toBe(500);
    // dropTarget() called after a merge drops the merged hint, whose enqueue is still in flight.
    const [, dropped] = await Promise.all([store.enqueue("t", "k", bytes("c")), store.dropTarget("t")]);
    expect(dropped).toBe(1);
    expect(await store.list("t")).toEqual([]);
    expect(store.size()).toBe(0);
    expect(store.bytes()).toBe(0);
  });
});

interface LegacyHint {
  readonly target: string;
  readonly seq: number;
  readonly key: string;
  readonly createdAt: number;
  readonly record: string;
}

/** Writes a store as the version before the one-hint-per-key rule could leave it. */
async function writeLegacyStore(dir: string, hints: readonly LegacyHint[], nextSeq: number): Promise<void> {
  const db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: "buffer", valueEncoding: "buffer" });
  await db.batch([
    { type: "put", key: FORMAT_KEY, value: Buffer.from(FORMAT_MARKER) },
    { type: "put", key: NEXT_SEQ_KEY, value: encodeSeqValue(nextSeq) },
    ...hints.map((hint) => ({
      type: "put" as const,
      key: encodeHintKey(hint.target, hint.seq),
      value: encodeHintValue(hint.key, hint.createdAt, bytes(hint.record)),
    })),
  ]);
  await db.close();
}

async function readRaw(dir: string): Promise<{ seqs: string[]; nextSeq: number }> {
  const db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: "buffer", valueEncoding: "buffer" });
  const keys = await db.keys(ALL_HINTS_RANGE).all();
  const nextSeq = decodeSeqValue((await db.get(NEXT_SEQ_KEY))!);
  await db.close();
  return { seqs: keys.map((key) => `${decodeHintKey(key).target}/${decodeHintKey(key).seq}`), nextSeq };
}

describe("stores written before the one-hint-per-key rule", () => {
  const legacy: LegacyHint[] = [
    { target: "t", seq: 1, key: "k", createdAt: 10, record: "a" },
    { target: "t", seq: 2, key: "other", createdAt: 20, record: "x" },
    { target: "t", seq: 3, key: "k", createdAt: 30, record: "b" },
    { target: "u", seq: 4, key: "k", createdAt: 35, record: "u" },
    { target: "t", seq: 5, key: "k", createdAt: 40, record: "c" },
  ];

  it("merges several hints of one (target, key) at open, oldest first, into one new hint", async () => {
    const dir = tempDirs.create();
    await writeLegacyStore(dir, legacy, 6);
    const clock = new FakeClock(100);
    const store = await open(dir, { merge: concatenate, now: clock.now });

    const listed = await store.list("t");
    expect(listed.map((hint) => `${hint.key}=${text(hint.record)}`)).toEqual(["other=x", "k=abc"]);
    expect(listed[1]).toMatchObject({ id: "0000000000000006@t", createdAt: 100 });
    expect(await summaryOf(store, "u")).toEqual(["k=u"]);
    expect(store.size()).toBe(3);
    expect(store.bytes()).toBe("otherx".length + "kabc".length + "ku".length);
    // Hints replaced at open are gone for ack too.
    expect(await store.ack(["0000000000000001@t", "0000000000000005@t"])).toBe(0);
    await store.close();

    expect(await readRaw(dir)).toEqual({ seqs: ["t/2", "t/6", "u/4"], nextSeq: 7 });
    const again = await open(dir, { merge: concatenate });
    expect(await summaryOf(again, "t")).toEqual(["other=x", "k=abc"]);
    const next = await again.enqueue("t", "k", bytes("d"));
    expect(next.id).toBe("0000000000000007@t");
    expect(text(next.record)).toBe("abcd");
  });

  it("refuses to open, changing nothing, when the merge throws for the duplicates", async () => {
    const dir = tempDirs.create();
    await writeLegacyStore(dir, legacy, 6);
    const failing = () => {
      throw new Error("undecodable");
    };
    await expect(HintStore.open(dir, { merge: failing })).rejects.toThrow(HintStoreError);
    await expect(HintStore.open(dir, { merge: failing })).rejects.toThrow(/cannot merge the 3 hints stored for key "k" of target "t": undecodable/);
    expect(await readRaw(dir)).toEqual({ seqs: ["t/1", "t/2", "t/3", "t/5", "u/4"], nextSeq: 6 });
    const store = await open(dir);
    expect(await summaryOf(store, "t")).toEqual(["other=x", "k=c"]);
  });
});
