import { afterEach, describe, expect, it } from "vitest";
import { HintStoreFullError, HintStoreInputError } from "./errors.js";
import { DEFAULT_MAX_BYTES, DEFAULT_MAX_BYTES_PER_TARGET, DEFAULT_MAX_RECORD_BYTES, HintStore, type HintStoreOptions } from "./hint-store.js";
import { concatenate } from "./test-support/merges.js";
import { TempDirs } from "./test-support/temp-dirs.js";

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

/** A record of `n` bytes. With a one-byte key ("a".."z"), a hint then counts n + 1 bytes. */
const recordOf = (n: number, fill = 1) => new Uint8Array(n).fill(fill);

async function refusal(promise: Promise<unknown>): Promise<HintStoreFullError> {
  const error = await promise.then(
    () => expect.unreachable("the enqueue should have been refused"),
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(HintStoreFullError);
  return error as HintStoreFullError;
}

function snapshot(store: HintStore) {
  return { targets: store.targets(), size: store.size(), bytes: store.bytes() };
}

describe("maxRecordBytes", () => {
  it("refuses a record over the limit, as given or after merging, and keeps the stored hint", async () => {
    const store = await open(tempDirs.create(), { maxRecordBytes: 10, merge: concatenate });
    await store.enqueue("t", "k", recordOf(10));
    const tooLarge = await refusal(store.enqueue("t", "other", recordOf(11)));
    expect(tooLarge).toMatchObject({ cap: "maxRecordBytes", target: "t", current: 11, limit: 10 });
    expect(tooLarge.message).toMatch(/record of 11 bytes exceeds maxRecordBytes \(10\)/);

    const before = snapshot(store);
    const mergedTooLarge = await refusal(store.enqueue("t", "k", recordOf(1, 2)));
    expect(mergedTooLarge).toMatchObject({ cap: "maxRecordBytes", current: 11, limit: 10 });
    expect(snapshot(store)).toEqual(before);
    expect((await store.list("t"))[0]!.record).toEqual(recordOf(10));
    expect(store.counters()).toMatchObject({ stored: 1, merged: 0, refused: 2 });
  });

  it("defaults to 16 MiB", async () => {
    expect(DEFAULT_MAX_RECORD_BYTES).toBe(16 * 1024 * 1024);
    const store = await open(tempDirs.create());
    const error = await refusal(store.enqueue("t", "k", new Uint8Array(DEFAULT_MAX_RECORD_BYTES + 1)));
    expect(error).toMatchObject({ cap: "maxRecordBytes", limit: DEFAULT_MAX_RECORD_BYTES });
  });
});

describe("maxBytesPerTarget and maxBytes", () => {
  it("count UTF-8 key bytes plus record bytes, refuse past a target's cap and leave other targets alone", async () => {
    const store = await open(tempDirs.create(), { maxBytesPerTarget: 20 });
    await store.enqueue("t", "a", recordOf(9)); // 10 bytes
    await store.enqueue("t", "é", recordOf(8)); // 2 + 8 bytes: the target is exactly at its cap
    expect(store.targets()).toEqual([expect.objectContaining({ target: "t", count: 2, bytes: 20 })]);

    const before = snapshot(store);
    const error = await refusal(store.enqueue("t", "c", new Uint8Array(0)));
    expect(error).toMatchObject({ cap: "maxBytesPerTarget", target: "t", current: 20, requested: 1, limit: 20 });
    expect(error.message).toMatch(/full for this target \(20 bytes stored, 1 more requested, maxBytesPerTarget 20\).*"t"/);
    expect(snapshot(store)).toEqual(before);
    await expect(store.enqueue("u", "c", recordOf(19))).resolves.toMatchObject({ target: "u" });
    expect(store.bytes()).toBe(40);
  });

  it("refuse past the store-wide cap, whichever target the hint is for", async () => {
    expect(DEFAULT_MAX_BYTES).toBe(1024 ** 3);
    expect(DEFAULT_MAX_BYTES_PER_TARGET).toBe(256 * 1024 ** 2);
    const store = await open(tempDirs.create(), { maxBytes: 30 });
    await store.enqueue("t", "a", recordOf(14));
    await store.enqueue("u", "a", recordOf(14));
    const error = await refusal(store.enqueue("v", "a", recordOf(2)));
    expect(error).toMatchObject({ cap: "maxBytes", target: "v", current: 30, requested: 3, limit: 30 });
    expect(store.targets().map((summary) => summary.target)).toEqual(["t", "u"]);
  });

  it("charge a merge only for its growth, and always accept a merge that does not grow", async () => {
    const dir = tempDirs.create();
    const shrinkOrGrow = (older: Uint8Array, newer: Uint8Array) => (newer[0] === 0 ? newer : concatenate(older, newer));
    const store = await open(dir, { maxBytesPerTarget: 20, merge: shrinkOrGrow });
    await store.enqueue("t", "a", recordOf(9)); // 10
    await store.enqueue("t", "b", recordOf(5)); // 6
    await store.enqueue("t", "a", recordOf(4)); // 10 -> 14: +4 fits exactly
    expect(store.bytes()).toBe(20);
    const error = await refusal(store.enqueue("t", "b", recordOf(1)));
    expect(error).toMatchObject({ cap: "maxBytesPerTarget", current: 20, requested: 1 });
    await store.close();

    // Reopened with a lower cap, the store is over it: new bytes are refused, a shrinking merge is not.
    const reopened = await open(dir, { maxBytesPerTarget: 10, merge: shrinkOrGrow });
    await refusal(reopened.enqueue("t", "c", new Uint8Array(0)));
    await expect(reopened.enqueue("t", "a", recordOf(3, 0))).resolves.toMatchObject({ key: "a" });
    expect(reopened.bytes()).toBe(4 + 6);
    expect(reopened.counters()).toMatchObject({ merged: 1, refused: 1 });
  });

  it("count enqueues in flight in call order, and free their bytes on ack", async () => {
    const store = await open(tempDirs.create(), { maxBytesPerTarget: 50 });
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => store.enqueue("t", String.fromCharCode(97 + i), recordOf(i % 2 === 0 ? 9 : 19))),
    );
    // 10 + 20 + 10 = 40 fit; the 20-byte hints after that do not, the 10-byte one does (50).
    expect(results.map((result) => result.status)).toEqual([
      "fulfilled",
      "fulfilled",
      "fulfilled",
      "rejected",
      "fulfilled",
      "rejected",
      "rejected",
      "rejected",
    ]);
    expect(store.bytes()).toBe(50);
    expect(store.counters()).toMatchObject({ stored: 4, refused: 4 });
    await store.ack([(results[1] as PromiseFulfilledResult<{ id: string }>).value.id]);
    expect(store.bytes()).toBe(30);
    await expect(store.enqueue("t", "z", recordOf(19))).resolves.toMatchObject({ key: "z" });
  });

  it("are recomputed from disk at open", async () => {
    const dir = tempDirs.create();
    const store = await open(dir);
    await store.enqueue("t", "a", recordOf(9));
    await store.enqueue("u", "bb", recordOf(3));
    await store.close();
    const reopened = await open(dir, { maxBytes: 16 });
    expect(reopened.bytes()).toBe(15);
    expect(reopened.targets().map((summary) => [summary.target, summary.bytes])).toEqual([
      ["t", 10],
      ["u", 5],
    ]);
    expect(await refusal(reopened.enqueue("v", "c", recordOf(1)))).toMatchObject({ cap: "maxBytes", current: 15 });
  });
});

describe("maxHints with merges", () => {
  it("lets a merge into an existing hint through when the store is at maxHints", async () => {
    const store = await open(tempDirs.create(), { maxHints: 2, merge: concatenate });
    await store.enqueue("t", "a", recordOf(1));
    await store.enqueue("t", "b", recordOf(1));
    const error = await refusal(store.enqueue("t", "c", recordOf(1)));
    expect(error).toMatchObject({ cap: "maxHints", current: 2, requested: 1, limit: 2, maxHints: 2 });
    await expect(store.enqueue("t", "a", recordOf(1))).resolves.toMatchObject({ key: "a" });
    expect(store.size()).toBe(2);
    expect(store.counters()).toMatchObject({ stored: 3, merged: 1, refused: 1 });
  });
});

describe("options", () => {
  it("rejects caps that are not positive integers", async () => {
    const dir = tempDirs.create();
    for (const options of [{ maxBytes: 0 }, { maxBytesPerTarget: -1 }, { maxRecordBytes: 1.5 }, { maxBytes: Number.POSITIVE_INFINITY }]) {
      await expect(HintStore.open(dir, options), JSON.stringify(options)).rejects.toThrow(HintStoreInputError);
    }
  });
});

describe("list() with a byte budget", () => {
  it("stops once the records listed reach maxBytes, but always lists one hint", async () => {
    const store = await open(tempDirs.create());
    for (const key of ["a", "b", "c", "d"]) {
      await store.enqueue("t", key, recordOf(10));
    }
    const keys = async (limit: number, maxBytes?: number) => (await store.list("t", limit, maxBytes)).map((hint) => hint.key);
    expect(await keys(100, 20)).toEqual(["a", "b"]);
    expect(await keys(100, 25)).toEqual(["a", "b", "c"]);
    expect(await keys(100, 1)).toEqual(["a"]);
    expect(await keys(2, 1000)).toEqual(["a", "b"]);
    expect(await keys(100)).toEqual(["a", "b", "c", "d"]);
    expect(await store.list("nobody", 10, 10)).toEqual([]);
  });

  it("returns a single hint larger than the budget on its own", async () => {
    const store = await open(tempDirs.create());
    await store.enqueue("t", "big", recordOf(1000));
    await store.enqueue("t", "small", recordOf(1));
    const listed = await store.list("t", 100, 10);
    expect(listed.map((hint) => [hint.key, hint.record.length])).toEqual([["big", 1000]]);
  });

  it("rejects a budget that is not a positive integer", async () => {
    const store = await open(tempDirs.create());
    await store.enqueue("t", "a", recordOf(1));
    for (const maxBytes of [0, -5, 2.5, Number.NaN]) {
      await expect(store.list("t", 10, maxBytes)).rejects.toThrow(HintStoreInputError);
    }
  });
});
