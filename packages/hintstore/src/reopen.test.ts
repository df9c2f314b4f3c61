import fs from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { HintStoreClosedError, HintStoreOpenError, HintStoreWriteError } from "./errors.js";
import { HintStore, type HintStoreOptions } from "./hint-store.js";
import { mountUnavailableReason, TmpfsMounts } from "./test-support/mounts.js";
import { bytes, concatenate, text } from "./test-support/merges.js";
import { FakeClock, TempDirs } from "./test-support/temp-dirs.js";

const tempDirs = new TempDirs();
const mounts = new TmpfsMounts();
const openStores: HintStore[] = [];

afterEach(async () => {
  await Promise.allSettled(openStores.splice(0).map((store) => store.close()));
  mounts.cleanup();
  tempDirs.cleanup();
});

async function open(dir: string, options?: HintStoreOptions): Promise<HintStore> {
  const store = await HintStore.open(dir, options);
  openStores.push(store);
  return store;
}

const listed = async (store: HintStore, target: string) => (await store.list(target, 1000)).map((hint) => `${hint.key}=${text(hint.record)}`);

describe("reopen()", () => {
  it("rebuilds the index from disk and carries on with counters and ids", async () => {
    const clock = new FakeClock(100);
    const store = await open(tempDirs.create(), { now: clock.now, merge: concatenate });
    const first = await store.enqueue("t", "a", bytes("1"));
    await store.enqueue("u", "b", bytes("2"));
    await store.enqueue("t", "a", bytes("3"));
    const before = { targets: store.targets(), size: store.size(), bytes: store.bytes(), counters: store.counters() };

    await store.reopen();
    expect({ targets: store.targets(), size: store.size(), bytes: store.bytes(), counters: store.counters() }).toEqual(before);
    expect(await listed(store, "t")).toEqual(["a=13"]);
    const next = await store.enqueue("t", "a", bytes("4"));
    expect(text(next.record)).toBe("134");
    expect(next.id > first.id).toBe(true);
    expect(store.counters()).toMatchObject({ stored: 4, merged: 2 });
    expect(store.lastWriteError()).toBeUndefined();
  });

  it("finishes writes accepted before it, and makes operations called during it wait, in call order", async () => {
    const store = await open(tempDirs.create(), { merge: concatenate });
    const old = await store.enqueue("t", "old", bytes("o"));
    const before = store.enqueue("t", "k", bytes("a"));
    const reopening = store.reopen();
    expect(store.reopen()).toBe(reopening); // a second call joins the first
    const during = store.enqueue("t", "k", bytes("b"));
    const acked = store.ack([old]);
    const listing = store.list("t");
    await reopening;
    expect(text((await before).record)).toBe("a");
    expect(text((await during).record)).toBe("ab");
    expect(await acked).toBe(1);
    // A listing shows what was durable when it was made: the ack and merge called before it were not yet written.
    expect((await listing).map((hint) => `${hint.key}=${text(hint.record)}`)).toEqual(["old=o", "k=a"]);
    expect(await listed(store, "t")).toEqual(["k=ab"]);
  });

  it("is refused after close(), and close() waits for a reopen under way", async () => {
    const dir = tempDirs.create();
    const store = await open(dir);
    await store.enqueue("t", "k", bytes("a"));
    const reopening = store.reopen();
    const closing = store.close();
    await reopening;
    await closing;
    await expect(store.reopen()).rejects.toThrow(HintStoreClosedError);
    const again = await open(dir);
    expect(await listed(again, "t")).toEqual(["k=a"]);
  });
});

const mountProblem = mountUnavailableReason();
if (mountProblem !== null) {
  console.warn(`hintstore: skipping the full-disk and read-only tests: cannot mount a tmpfs here (${mountProblem}). CI runs them as root.`);
}

describe.skipIf(mountProblem !== null)("a disk that fills up or turns read-only (tmpfs mounts)", () => {
  /** A 2 MiB tmpfs with a store in it. */
  async function storeOnSmallDisk(): Promise<{ mount: string; store: HintStore }> {
    const mount = tempDirs.create();
    mounts.mount(mount, 2 * 1024 * 1024);
    const store = await open(path.join(mount, "hints"), { merge: concatenate });
    return { mount, store };
  }

  it("fails the write that hits a full disk, refuses writes until reopen(), and reports it until a write succeeds", async () => {
    const { mount, store } = await storeOnSmallDisk();
    const a = await store.enqueue("t", "a", bytes("1"));
    await store.enqueue("t", "b", bytes("2"));
    const filler = mounts.fill(mount);

    const failed = store.enqueue("t", "c", new Uint8Array(100_000));
    await expect(failed).rejects.toThrow(HintStoreWriteError);
    await expect(failed).rejects.toThrow(/No space left on device/);
    expect(store.lastWriteError()).toBeInstanceOf(HintStoreWriteError);
    expect(store.lastWriteError()!.message).toMatch(/hint store write failed: .*No space left on device/);

    // Nothing is written any more, even what would fit, until the store is reopened; reads still work.
    await expect(store.enqueue("t", "d", bytes("3"))).rejects.toThrow(/not writable after a failed write .*reopen\(\)/);
    await expect(store.ack([a])).rejects.toThrow(HintStoreWriteError);
    await expect(store.expire()).rejects.toThrow(HintStoreWriteError);
    await expect(store.dropTarget("t")).rejects.toThrow(HintStoreWriteError);
    expect(await listed(store, "t")).toEqual(["a=1", "b=2"]);
    expect(store.targets()).toEqual([expect.objectContaining({ target: "t", count: 2 })]);

    fs.rmSync(filler);
    await store.reopen();
    expect(await listed(store, "t")).toEqual(["a=1", "b=2"]);
    expect(store.size()).toBe(2);
    expect(store.lastWriteError()).toBeInstanceOf(HintStoreWriteError); // no write has succeeded yet

    await store.enqueue("t", "c", new Uint8Array(100_000));
    expect(store.lastWriteError()).toBeUndefined();
    expect(await store.ack([a])).toBe(1);
    await store.close();
    const reopened = await open(path.join(mount, "hints"));
    expect((await reopened.list("t")).map((hint) => hint.key)).toEqual(["b", "c"]);
  });

  it("keeps failing reopen() while the disk is full or read-only, rejecting operations meanwhile, and recovers after", async () => {
    const { mount, store } = await storeOnSmallDisk();
    await store.enqueue("t", "a", bytes("1"));
    const filler = mounts.fill(mount);
    await expect(store.enqueue("t", "b", new Uint8Array(100_000))).rejects.toThrow(HintStoreWriteError);

    // Opening LevelDB writes (it turns its log into a table), so it fails on the full disk.
    await expect(store.reopen()).rejects.toThrow(HintStoreOpenError);
    await expect(store.enqueue("t", "b", bytes("2"))).rejects.toThrow(/not open .*No space left on device.*call reopen\(\)/);
    await expect(store.list("t")).rejects.toThrow(HintStoreOpenError);
    await expect(store.ack(["0000000000000001@t"])).rejects.toThrow(HintStoreOpenError);
    expect(store.size()).toBe(1); // the in-memory readers keep answering with what was last known

    // Linux refuses to remount read-only while LevelDB has files open for writing; after the failed
    // reopen() it has none, so this is a store that must reopen on a read-only file system.
    fs.rmSync(filler);
    mounts.remount(mount, "ro");
    await expect(store.reopen()).rejects.toThrow(/Read-only file system/);
    await expect(store.expire()).rejects.toThrow(HintStoreOpenError);

    mounts.remount(mount, "rw");
    await store.reopen();
    expect(await listed(store, "t")).toEqual(["a=1"]);
    expect(store.lastWriteError()).toBeInstanceOf(HintStoreWriteError);
    await store.enqueue("t", "a", bytes("2"));
    expect(store.lastWriteError()).toBeUndefined();
    expect(await listed(store, "t")).toEqual(["a=12"]);
  });

  it("rejects the enqueues of a batch that failed and every one made after it", async () => {
    const { mount, store } = await storeOnSmallDisk();
    await store.enqueue("t", "a", bytes("1"));
    const filler = mounts.fill(mount);
    const sameBatch = [store.enqueue("t", "big", new Uint8Array(100_000)), store.enqueue("t", "k0", bytes("x"))];
    // Made while that batch is being written (queued behind it) or after it failed: refused either way.
    await new Promise(setImmediate);
    const later = Array.from({ length: 4 }, (_, i) => store.enqueue("t", `k${i + 1}`, bytes("x")));
    const results = await Promise.allSettled([...sameBatch, ...later]);
    for (const result of results) {
      expect(result.status).toBe("rejected");
      expect((result as PromiseRejectedResult).reason).toBeInstanceOf(HintStoreWriteError);
    }
    fs.rmSync(filler);
    await store.reopen();
    expect(await listed(store, "t")).toEqual(["a=1"]);
    expect(store.counters()).toMatchObject({ stored: 1 });
  });
});
