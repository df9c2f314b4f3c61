// Real disk failures on a small tmpfs: a full disk (ENOSPC) and a read-only data directory (EROFS).
// Needs root to mount (CI runs tests as root); without it these tests are skipped with the reason
// printed. Every mount is undone in afterEach, after the stores on it are closed, even when a test
// fails.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { liveValues, update } from "@dynamo-ts/vclock";
import type { SiblingSet } from "@dynamo-ts/vclock";
import { ClassicLevel } from "classic-level";
import { afterEach, describe, expect, it } from "vitest";
import { StorageWriteError } from "./errors.js";
import { Storage } from "./storage.js";
import type { StorageUnavailableError } from "./errors.js";

const run = (...args: string[]): void => {
  execFileSync(args[0] as string, args.slice(1), { stdio: "pipe" });
};

/** Why tmpfs cannot be mounted here, or undefined when it can. */
function mountProblem(): string | undefined {
  if (process.platform !== "linux") return `mounting tmpfs needs Linux, this is ${process.platform}`;
  if (process.getuid?.() !== 0) return "mounting tmpfs needs root";
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "storage-mount-check-"));
  try {
    run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir);
    run("umount", dir);
    return undefined;
  } catch (error) {
    return `mount -t tmpfs failed: ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}`;
  } finally {
    fs.rmdirSync(dir);
  }
}

const cannotMount = mountProblem();
if (cannotMount !== undefined) console.warn(`skipping the disk failure tests (tmpfs): ${cannotMount}`);

/** Mounts, newest last: undone in reverse order. */
const mounts: string[] = [];
const mountPoints: string[] = [];
const openStores: Storage[] = [];

afterEach(async () => {
  // The stores hold files open on the mounts: close them first (a failing store closes too).
  await Promise.allSettled(openStores.splice(0).map((store) => store.close()));
  for (const dir of mounts.splice(0).reverse()) {
    try {
      run("umount", dir);
    } catch {
      run("umount", "--lazy", dir); // something still holds it open: detach it anyway
    }
  }
  for (const dir of mountPoints.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function mountTmpfs(size: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "storage-tmpfs-"));
  mountPoints.push(dir);
  run("mount", "-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir);
  mounts.push(dir);
  return dir;
}

async function openStore(dir: string): Promise<Storage> {
  const store = await Storage.open(dir, { sync: true });
  openStores.push(store);
  return store;
}

const decoder = new TextDecoder();
const values = (set: SiblingSet | undefined): string[] => (set === undefined ? [] : liveValues(set).map((v) => decoder.decode(v)));
const small = (value: string) => (current: SiblingSet | undefined) => update(current, current?.clock ?? new Map(), "n1", new TextEncoder().encode(value), 1);

/** A 256 KiB value that starts with `label` (the rest compresses well, so that recovery needs little space). */
function large(label: string): (current: SiblingSet | undefined) => SiblingSet {
  const bytes = new Uint8Array(256 * 1024).fill(0x2e);
  bytes.set(new TextEncoder().encode(label));
  return (current) => update(current, current?.clock ?? new Map(), "n1", bytes, 1);
}

const labelOf = (set: SiblingSet | undefined): string => (set === undefined ? "" : (values(set)[0]?.split(".")[0] ?? ""));

/** Writes large records until one fails; returns the acknowledged keys and the failure. */
async function fillUntilWriteFails(store: Storage): Promise<{ acknowledged: string[]; failure: unknown }> {
  const acknowledged: string[] = [];
  for (let i = 0; i < 200; i++) {
    const key = `big-${i}`;
    try {
      await store.update(key, large(key));
      acknowledged.push(key);
    } catch (failure) {
      return { acknowledged, failure };
    }
  }
  throw new Error("200 records of 256 KiB fitted on a 4 MiB tmpfs: the disk never filled");
}

/** What a full disk looks like from the store, before any recovery. */
async function expectFailingAfterDiskFull(store: Storage, acknowledged: string[], failure: unknown, failures: Error[]): Promise<void> {
  expect(failure).toBeInstanceOf(StorageWriteError);
  expect((failure as Error).message).toMatch(/No space left on device/);
  expect(acknowledged.length).toBeGreaterThan(3);
  const health = store.health();
  expect(health).toMatchObject({ writable: false, error: (failure as Error).message });
  expect(health.since).toEqual(expect.any(Number));
  expect(failures).toEqual([failure]);

  // Reads keep working; writes, even small ones, are refused without touching the disk.
  for (const key of acknowledged) expect(labelOf(await store.get(key))).toBe(key);
  expect(await store.count()).toBeGreaterThanOrEqual(acknowledged.length);
  await expect(store.update("small", small("v"))).rejects.toThrow(/not writable since/);
  await expect(store.probe()).rejects.toThrow(StorageWriteError);
  expect(failures).toHaveLength(1);
}

/** After recovery: writable, writes succeed and, like every acknowledged write, survive a close and open. */
async function expectRecovered(store: Storage, dir: string, acknowledged: string[]): Promise<void> {
  expect(store.health()).toEqual({ writable: true });
  await store.probe();
  await store.update("after-1", small("one"));
  await store.update("after-2", large("after-2"));
  await store.close();
  const reopened = await openStore(dir);
  expect(reopened.created).toBe(false);
  for (const key of acknowledged) expect(labelOf(await reopened.get(key))).toBe(key);
  expect(values(await reopened.get("after-1"))).toEqual(["one"]);
  expect(labelOf(await reopened.get("after-2"))).toBe("after-2");
  expect(reopened.health()).toEqual({ writable: true });
}

describe.skipIf(cannotMount !== undefined)("a full disk (4 MiB tmpfs)", () => {
  it("fails writes with StorageWriteError, stays not writable, serves reads, and recovers by reopen() once a filler file is deleted", async () => {
    const mount = mountTmpfs("4m");
    fs.writeFileSync(path.join(mount, "filler"), new Uint8Array(1024 * 1024));
    const dir = path.join(mount, "db");
    const store = await openStore(dir);
    const failures: Error[] = [];
    store.onWriteFailure((error) => failures.push(error));

    const { acknowledged, failure } = await fillUntilWriteFails(store);
    await expectFailingAfterDiskFull(store, acknowledged, failure, failures);

    // Still full: reopen refuses before closing anything (the directory takes no write), reads go on.
    const stillFull = (await store.reopen().catch((error: unknown) => error)) as Error;
    expect(stillFull).toBeInstanceOf(StorageWriteError);
    expect(stillFull.message).toMatch(/does not take a write: .*ENOSPC/);
    expect(store.health()).toMatchObject({ writable: false, error: stillFull.message, since: store.health().since });
    expect(labelOf(await store.get(acknowledged[0] as string))).toBe(acknowledged[0]);

    fs.rmSync(path.join(mount, "filler"));
    await store.reopen();
    expect(failures).toHaveLength(1);
    await expectRecovered(store, dir, acknowledged);
  });

  it("recovers by reopen() once the filesystem is remounted with more space", async () => {
    const mount = mountTmpfs("4m");
    const dir = path.join(mount, "db");
    const store = await openStore(dir);
    const failures: (StorageWriteError | StorageUnavailableError)[] = [];
    store.onWriteFailure((error) => failures.push(error));

    const { acknowledged, failure } = await fillUntilWriteFails(store);
    await expectFailingAfterDiskFull(store, acknowledged, failure, failures);

    run("mount", "-o", "remount,size=64m", mount);
    await store.reopen();
    await expectRecovered(store, dir, acknowledged);
    expect(failures).toHaveLength(1);
  });
});

describe.skipIf(cannotMount !== undefined)("LevelDB itself after a failed write (why the store refuses writes until reopen)", () => {
  it("acknowledges synced writes after a failed log append, and loses them at the next open", async () => {
    const mount = mountTmpfs("4m");
    fs.writeFileSync(path.join(mount, "filler"), new Uint8Array(1024 * 1024));
    const dir = path.join(mount, "db");
    const db = new ClassicLevel<string, Uint8Array>(dir, { valueEncoding: "view" });
    await db.open();
    const big = new Uint8Array(200 * 1024).fill(7);
    let failed = false;
    for (let i = 0; i < 100 && !failed; i++) {
      await db.put(`k${i}`, big, { sync: true }).catch(() => (failed = true));
    }
    expect(failed).toBe(true);
    fs.rmSync(path.join(mount, "filler"));
    // Space is back: LevelDB takes and acknowledges these, synced...
    await db.put("after-1", Uint8Array.of(1), { sync: true });
    await db.put("after-2", big, { sync: true });
    await db.close();
    // ...but the failed append left a partial record that misaligns the log: reading it back drops them.
    await db.open();
    const found = [await db.get("after-1"), await db.get("after-2")].filter((v) => v !== undefined);
    await db.close();
    expect(found.length).toBeLessThan(2);
  });
});

describe.skipIf(cannotMount !== undefined)("a read-only data directory", () => {
  it("probe() fails with StorageWriteError, reads go on, and reopen() recovers once it is writable again", async (context) => {
    const mount = mountTmpfs("16m");
    const dir = path.join(mount, "db");
    const store = await openStore(dir);
    await store.update("k", small("v"));
    const failures: Error[] = [];
    store.onWriteFailure((error) => failures.push(error));
    await store.probe();

    // `mount -o remount,ro` is refused (EBUSY) while files on the mount are open for writing, as
    // LevelDB's are. A read-only bind mount over the same directory is allowed: paths now lead to a
    // read-only mount, as after a remount, while LevelDB's open files stay writable. probe() is what
    // notices (it creates a file), before a log rotation or compaction would fail.
    let makeWritable: () => void;
    try {
      run("mount", "-o", "remount,ro", mount);
      makeWritable = () => run("mount", "-o", "remount,rw", mount);
    } catch {
      try {
        run("mount", "--bind", mount, mount);
        mounts.push(mount);
        run("mount", "-o", "remount,bind,ro", mount);
      } catch (error) {
        console.warn(`skipping: cannot make ${mount} read-only: ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}`);
        context.skip();
        return;
      }
      makeWritable = () => run("mount", "-o", "remount,bind,rw", mount);
    }
    expect(() => fs.writeFileSync(path.join(dir, "x"), "x")).toThrow(/EROFS/);

    const probed = (await store.probe().catch((error: unknown) => error)) as Error;
    expect(probed).toBeInstanceOf(StorageWriteError);
    expect(probed.message).toMatch(/does not take a write: .*EROFS/);
    expect(store.health()).toMatchObject({ writable: false, error: probed.message });
    expect(failures).toEqual([probed]);
    expect(values(await store.get("k"))).toEqual(["v"]);
    await expect(store.update("k2", small("v"))).rejects.toThrow(StorageWriteError);

    // Still read-only: reopen refuses without closing LevelDB, reads go on.
    await expect(store.reopen()).rejects.toThrow(/does not take a write: .*EROFS/);
    expect(values(await store.get("k"))).toEqual(["v"]);

    makeWritable();
    await store.reopen();
    expect(failures).toHaveLength(1);
    await expectRecovered(store, dir, []);
    expect(values(await openStores.at(-1)?.get("k"))).toEqual(["v"]);
  });
});
